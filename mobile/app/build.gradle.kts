plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "studio.deepfake.app"
    compileSdk = 35

    defaultConfig {
        applicationId = "studio.deepfake.app"
        minSdk = 26
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    kotlinOptions {
        jvmTarget = "17"
    }

    // The default bundle is copied in at build time (see copyDefaultBundle below).
    sourceSets["main"].assets.srcDir(layout.buildDirectory.dir("generated/bundleAssets"))

    androidResources {
        // Stored uncompressed: the first start copies the default model out of the APK quickly.
        noCompress += "onnx"
    }
}

// assets/bundles/default of the desktop project becomes the app's assets/bundle/.
val defaultBundle = rootProject.layout.projectDirectory.dir("../assets/bundles/default")
val copyDefaultBundle by tasks.registering(Sync::class) {
    description = "Copies ../assets/bundles/default into the app's assets as bundle/."
    from(defaultBundle)
    into(layout.buildDirectory.dir("generated/bundleAssets/bundle"))
    doFirst {
        if (!defaultBundle.file("bundle.json").asFile.isFile) {
            logger.warn("no default bundle at ${defaultBundle.asFile}: the app will ask for one")
        }
    }
}
tasks.named("preBuild") { dependsOn(copyDefaultBundle) }

dependencies {
    implementation(project(":core"))
    implementation("com.microsoft.onnxruntime:onnxruntime-android:1.20.0")
    implementation("androidx.core:core-ktx:1.13.1")
    implementation("androidx.activity:activity-ktx:1.9.3")
    implementation("androidx.exifinterface:exifinterface:1.3.7")
    implementation("androidx.documentfile:documentfile:1.0.1")
}
