// Pure Java, no Android: the same sources run in the app and in tests/test_mobile_jvm.py
// (which compiles them with javac, without Gradle).
plugins {
    `java-library`
}

java {
    sourceCompatibility = JavaVersion.VERSION_17
    targetCompatibility = JavaVersion.VERSION_17
}

dependencies {
    testImplementation("junit:junit:4.13.2")
}

tasks.test {
    // ./gradlew :core:test -Pbundle.dirs=/path/to/bundle runs the golden parity check too.
    listOf("bundle.dirs", "decode.dir", "parity.report").forEach { key ->
        project.findProperty(key)?.let { systemProperty(key, it) }
    }
    systemProperty("java.awt.headless", "true")
}
