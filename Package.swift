// swift-tools-version: 6.0
import PackageDescription

/// The modules of the lean `shoal-agent` put each function in a section of its own, so that its link can place the
/// functions an idle agent runs side by side (`Sources/shoal-agent/hot-functions.txt`): the pages it maps are then
/// those of the code it runs, not of its neighbours.
let leanSettings: [SwiftSetting] = [.unsafeFlags(["-Xfrontend", "-function-sections"])]

let package = Package(
    name: "shoal",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "shoal", targets: ["shoal"]),
        .executable(name: "shoal-agent", targets: ["shoal-agent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swhitty/FlyingFox", from: "0.27.1"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CZeroMQ",
            pkgConfig: "libzmq",
            providers: [.apt(["libzmq3-dev"])]
        ),
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
        // ShoalCore, ZeroMQ, Protocol and AgentRuntime import FoundationEssentials, never Foundation: the lean
        // `shoal-agent` is built from them alone (see docs/architecture.md, "The lean agent").
        .target(
            name: "ShoalCore",
            dependencies: [
                "CShoalSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: leanSettings
        ),
        .target(name: "ZeroMQ", dependencies: ["CZeroMQ", "ShoalCore"], swiftSettings: leanSettings),
        .target(name: "CShoalSupport"),
        .target(
            name: "ShoalSupport",
            dependencies: [
                "CShoalSupport", "ShoalCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .target(
            name: "Protocol", dependencies: ["ShoalCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: leanSettings),
        .target(
            name: "Cluster",
            dependencies: ["ShoalSupport", "Protocol", "GitOps", .product(name: "Yams", package: "Yams")]
        ),
        // The .tf files of terraform/ and the dashboards of contrib/grafana/ are compiled into their modules by
        // the EmbedTerraform and EmbedDashboards plugins.
        .executableTarget(name: "FileEmbedder"),
        .plugin(name: "EmbedTerraform", capability: .buildTool(), dependencies: ["FileEmbedder"]),
        .plugin(name: "EmbedDashboards", capability: .buildTool(), dependencies: ["FileEmbedder"]),
        .target(name: "Terraform", dependencies: ["ShoalSupport"], plugins: ["EmbedTerraform"]),
        .target(
            name: "GitOps",
            dependencies: [
                "ShoalSupport",
                .product(name: "FlyingFox", package: "FlyingFox"),
                .product(name: "FlyingSocks", package: "FlyingFox"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            plugins: ["EmbedDashboards"]
        ),
        .target(
            name: "Coordinator",
            dependencies: [
                "ZeroMQ", "Protocol", "ShoalSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "FlyingFox", package: "FlyingFox"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "AgentRuntime",
            dependencies: [
                "ZeroMQ", "Protocol", "ShoalCore", "CShoalSupport", "CSodium",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: leanSettings
        ),
        .target(
            name: "Agents",
            dependencies: ["AgentRuntime", "Protocol", "Cluster", "Terraform", "GitOps", "ShoalSupport"]
        ),
        // The lean agent that `shoal agent` becomes: no Foundation, the Swift runtime linked in, so an idle agent
        // maps few pages.
        .executableTarget(
            name: "shoal-agent",
            dependencies: [
                "AgentRuntime", "Protocol", "ShoalCore", .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["hot-functions.txt"],
            swiftSettings: leanSettings,
            linkerSettings: [
                .unsafeFlags([
                    "-static-stdlib", "-l_FoundationCollections", "-l_FoundationCShims", "-use-ld=lld",
                    "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs", "-Xlinker", "--no-export-dynamic",
                    "-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/Sources/shoal-agent/hot-functions.txt",
                    "-Xlinker", "--no-warn-symbol-ordering",
                ])
            ]
        ),
        .executableTarget(
            name: "shoal",
            dependencies: [
                "Coordinator", "AgentRuntime", "Agents", "Protocol", "ZeroMQ", "ShoalSupport", "Terraform", "Cluster",
                "GitOps",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ"]),
        .testTarget(
            name: "ProtocolTests",
            dependencies: ["Protocol", .product(name: "PropertyBased", package: "swift-property-based")]
        ),
        .testTarget(
            name: "ShoalSupportTests",
            dependencies: ["ShoalSupport", .product(name: "PropertyBased", package: "swift-property-based")]
        ),
        .testTarget(
            name: "ClusterTests", dependencies: ["Cluster", "Protocol", .product(name: "Yams", package: "Yams")]),
        .testTarget(name: "TerraformTests", dependencies: ["Terraform"]),
        .testTarget(
            name: "GitOpsTests",
            dependencies: [
                "GitOps", "ShoalSupport", .product(name: "Yams", package: "Yams"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "CoordinatorTests",
            dependencies: [
                "Coordinator", "AgentRuntime", "Protocol", "ZeroMQ",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "AgentRuntimeTests",
            dependencies: [
                "AgentRuntime", "Protocol", "ShoalCore", "ZeroMQ", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "AgentsTests",
            dependencies: ["Agents", "AgentRuntime", "Cluster", "Protocol", "ShoalSupport", "Terraform"]
        ),
        .testTarget(name: "ShoalTests", dependencies: ["shoal", "Protocol", "AgentRuntime", "Agents"]),
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["ShoalSupport", "Coordinator", "Protocol", .product(name: "Yams", package: "Yams")]
        ),
        .testTarget(name: "FaultTests", dependencies: ["Coordinator", "Protocol", "ZeroMQ", "ShoalSupport"]),
        .testTarget(name: "ContainerTests", dependencies: ["ShoalSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
