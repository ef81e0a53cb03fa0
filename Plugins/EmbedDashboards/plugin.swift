import Foundation
import PackagePlugin

/// Compiles the Grafana dashboards of the package's `contrib/grafana/` directory into the module as
/// `EmbeddedDashboards.files`, so the monitoring stack ships the very file an operator imports into a Grafana of
/// their own; the build re-runs whenever one of them changes.
@main
struct EmbedDashboards: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) async throws -> [Command] {
        let directory = context.package.directoryURL.appending(path: "contrib/grafana")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".json") }
            .sorted()
        let inputs = names.map { directory.appending(path: $0) }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedDashboards.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(names.count) Grafana dashboards",
                executable: try context.tool(named: "FileEmbedder").url,
                arguments: ["EmbeddedDashboards", output.path] + inputs.map(\.path),
                inputFiles: inputs,
                outputFiles: [output])
        ]
    }
}
