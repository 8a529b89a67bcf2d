// swift-tools-version:6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    // https://github.com/apple/swift-evolution/blob/main/proposals/0335-existential-any.md
    .enableUpcomingFeature("ExistentialAny"),
    // https://github.com/swiftlang/swift-evolution/blob/main/proposals/0444-member-import-visibility.md
    .enableUpcomingFeature("MemberImportVisibility"),
    // https://github.com/swiftlang/swift-evolution/blob/main/proposals/0409-access-level-on-imports.md
    .enableUpcomingFeature("InternalImportsByDefault"),
    // Crew's own code builds without warnings, and a new one fails the build (SwiftPM ignores this setting when
    // Crew is a dependency of another package).
    .treatAllWarnings(as: .error),
]

// One benchmark child is a static executable: it starts without loading Swift's shared objects (its own labelled
// row in crew-bench; crew-bench itself is linked as a user's app is).
let staticExecutable: [LinkerSetting] = [
    .unsafeFlags(["-static-executable"]),
    // Crew's FoundationEssentials (for `Data`) needs these when linked statically; the driver does not add them.
    .linkedLibrary("_FoundationCollections"),
    .linkedLibrary("_FoundationCShims"),
]

let package = Package(
    name: "crew",
    products: [
        .library(name: "Crew", targets: ["Crew"]),
        .library(name: "CrewTesting", targets: ["CrewTesting"]),
        .library(name: "CrewQueue", targets: ["CrewQueue"]),
        .library(name: "CrewSQLite", targets: ["CrewSQLite"]),
        .library(name: "CrewPostgres", targets: ["CrewPostgres"]),
        .library(name: "CrewCLI", targets: ["CrewCLI"]),
        .library(name: "CrewHTTP", targets: ["CrewHTTP"]),
        .executable(name: "crew-demo", targets: ["crew-demo"]),
        .executable(name: "crew-bench", targets: ["crew-bench"]),
        .executable(name: "crew-queue-bench", targets: ["crew-queue-bench"]),
        .executable(name: "crew-bench-static", targets: ["crew-bench-static"]),
        .executable(name: "crew-http-bench", targets: ["crew-http-bench"]),
    ],
    // The brokers' database libraries are traits, both on by default: an app that names Crew with `traits: []` (or
    // with only the one it uses) does not even resolve GRDB, or postgres-nio and the SwiftNIO, swift-crypto and
    // swift-nio-ssl packages behind it.
    traits: [
        .default(enabledTraits: ["SQLite", "PostgreSQL", "HTTP"]),
        .trait(name: "SQLite", description: "CrewSQLite, the SQLite broker, on GRDB."),
        .trait(name: "PostgreSQL", description: "CrewPostgres, the PostgreSQL broker, on postgres-nio."),
        .trait(name: "HTTP", description: "CrewHTTP, prefork HTTP serving, on Hummingbird."),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-async-algorithms.git", from: "1.1.4"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        // `swift package generate-documentation`, which scripts/test runs for every library.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        // CrewHTTP's server (and the test that Crew's names live beside NIOCore's).
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        // The HTTP parts between Hummingbird's codec and its app, which CrewHTTP's request limits read.
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
    ],
    targets: [
        .target(name: "CCrewShims"),
        .target(
            name: "CrewHTTP",
            dependencies: [
                "Crew",
                .product(name: "Hummingbird", package: "hummingbird", condition: .when(traits: ["HTTP"])),
                .product(name: "HummingbirdCore", package: "hummingbird", condition: .when(traits: ["HTTP"])),
                .product(name: "NIOCore", package: "swift-nio", condition: .when(traits: ["HTTP"])),
                .product(name: "NIOPosix", package: "swift-nio", condition: .when(traits: ["HTTP"])),
                .product(name: "NIOHTTP1", package: "swift-nio", condition: .when(traits: ["HTTP"])),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras", condition: .when(traits: ["HTTP"])),
                .product(name: "HTTPTypes", package: "swift-http-types", condition: .when(traits: ["HTTP"])),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Crew",
            dependencies: [
                "CCrewShims",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "CrewTesting",
            dependencies: ["Crew"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "crew-demo",
            dependencies: [
                "Crew",
                "CrewQueue",
                "CrewCLI",
                .target(name: "CrewHTTP", condition: .when(traits: ["HTTP"])),
                .target(name: "CrewDemoRoutes", condition: .when(traits: ["HTTP"])),
                .product(name: "Hummingbird", package: "hummingbird", condition: .when(traits: ["HTTP"])),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // Linked dynamically: its queue commands bring GRDB, which needs all of Foundation, and a static
            // link of Foundation fails on this toolchain (CoreFoundation's symbols are not found).
            swiftSettings: swiftSettings
        ),
        // The durable queue's side of the benchmark: crew-bench runs it (it links GRDB and all of Foundation, which
        // crew-bench, a static executable, cannot).
        .executableTarget(
            name: "crew-queue-bench",
            dependencies: ["Crew", "CrewQueue", "CrewSQLite", "CrewCLI"],
            swiftSettings: swiftSettings
        ),
        // The benchmark, linked as a user's app is (Foundation, Swift's runtime as shared objects): its children are
        // this same program.
        .executableTarget(
            name: "crew-bench",
            dependencies: [
                "Crew",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        // The routes of crew-demo's `serve`, which crew-http-bench serves too.
        .target(
            name: "CrewDemoRoutes",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird", condition: .when(traits: ["HTTP"]))
            ],
            swiftSettings: swiftSettings
        ),
        // The servers of crew-bench's HTTP rows: Crew's prefork server and a bare Hummingbird app, one program.
        .executableTarget(
            name: "crew-http-bench",
            dependencies: [
                "Crew",
                .target(name: "CrewHTTP", condition: .when(traits: ["HTTP"])),
                .target(name: "CrewDemoRoutes", condition: .when(traits: ["HTTP"])),
                .product(name: "Hummingbird", package: "hummingbird", condition: .when(traits: ["HTTP"])),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The child of crew-bench's static-executable process-start row.
        .executableTarget(
            name: "crew-bench-static",
            dependencies: ["Crew"],
            swiftSettings: swiftSettings,
            linkerSettings: staticExecutable
        ),
        // The durable task queue (the Celery part) and its embedded SQLite broker.
        .target(
            name: "CrewQueue",
            dependencies: [
                "Crew",
                "CCrewShims",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "CrewSQLite",
            dependencies: [
                "Crew", "CCrewShims", "CrewQueue",
                .product(name: "GRDB", package: "GRDB.swift", condition: .when(traits: ["SQLite"])),
                // SQLite's own C API, for binding the many values of a bulk insert without boxing each.
                .product(name: "GRDBSQLite", package: "GRDB.swift", condition: .when(traits: ["SQLite"])),
            ],
            swiftSettings: swiftSettings
        ),
        // The PostgreSQL broker, for many workers on many machines.
        .target(
            name: "CrewPostgres",
            dependencies: [
                "CrewQueue",
                .product(name: "PostgresNIO", package: "postgres-nio", condition: .when(traits: ["PostgreSQL"])),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "CrewCLI",
            dependencies: [
                "CrewQueue",
                // Each broker with its trait: a program with only one of them still builds the command line.
                .target(name: "CrewSQLite", condition: .when(traits: ["SQLite"])),
                .target(name: "CrewPostgres", condition: .when(traits: ["PostgreSQL"])),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Functions the test suite runs in child processes, and the executable those children are.
        .target(
            name: "CrewTestSupport",
            dependencies: ["Crew", "CrewQueue", "CrewSQLite", "CrewCLI"],
            path: "Tests/CrewTestSupport",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "crew-test-worker",
            dependencies: ["Crew", "CrewTestSupport"],
            path: "Tests/CrewTestWorker",
            swiftSettings: swiftSettings
        ),
        // crew-bench's report, --compare and peer output, on made-up figures.
        .testTarget(
            name: "CrewBenchTests",
            dependencies: ["crew-bench"],
            swiftSettings: swiftSettings
        ),
        // Helpers every test target shares, for the test process only (children link CrewTestSupport alone): the
        // crew the tests bootstrap, error expectations, /proc inspection, the test PostgreSQL server.
        .target(
            name: "CrewTestHelpers",
            dependencies: [
                "Crew", "CrewTesting", "CrewTestSupport", "CrewQueue", "CrewPostgres",
                .product(name: "PostgresNIO", package: "postgres-nio", condition: .when(traits: ["PostgreSQL"])),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/CrewTestHelpers",
            swiftSettings: swiftSettings
        ),
        // One test target per library, then the integration tests (the README, the demo, the queue under chaos,
        // the names beside other libraries'). `swift test --filter CrewQueueTests` runs one.
        .testTarget(
            name: "CrewTests",
            dependencies: [
                "Crew", "CrewTesting", "CrewTestSupport", "CrewTestHelpers",
                // Built so that tests can start it as their child process.
                "crew-test-worker",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CrewQueueTests",
            dependencies: [
                "Crew", "CrewQueue", "CrewSQLite", "CrewPostgres", "CrewTestSupport", "CrewTestHelpers",
                "crew-test-worker",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CrewSQLiteTests",
            dependencies: ["CrewQueue", "CrewSQLite", "CrewTestHelpers"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CrewPostgresTests",
            dependencies: [
                "Crew", "CrewQueue", "CrewPostgres", "CrewTestSupport", "CrewTestHelpers", "crew-test-worker",
                .product(name: "PostgresNIO", package: "postgres-nio", condition: .when(traits: ["PostgreSQL"])),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CrewCLITests",
            dependencies: ["Crew", "CrewCLI", "CrewQueue", "CrewSQLite", "CrewTestSupport", "CrewTestHelpers"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CrewIntegrationTests",
            dependencies: [
                "Crew", "CrewTesting", "CrewTestSupport", "CrewTestHelpers", "CrewQueue", "CrewSQLite", "CrewPostgres",
                "CrewCLI", "crew-test-worker",
                // crew-demo, which the demo tests run, is not listed: the test script builds every product first.
                .product(name: "PostgresNIO", package: "postgres-nio", condition: .when(traits: ["PostgreSQL"])),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
