// Deepfake Studio for Android: the app and its pure-Java core (shared with the JVM parity tests).
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "deepfake-studio-mobile"
include(":core", ":app")
