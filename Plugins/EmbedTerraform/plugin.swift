import Foundation
import PackagePlugin

/// Turns the Terraform configuration in the package's `terraform/` directory into a Swift source that holds
/// the bytes of every `.tf` file, so the `shoal` executable carries its Terraform and needs no file beside it.
/// The `.tf` files stay ordinary files that editors open and `terraform fmt -check` reads; the build re-runs
/// the generator whenever one of them changes.
@main
struct EmbedTerraform: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) async throws -> [Command] {
        let directory = context.package.directoryURL.appending(path: "terraform")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".tf") }
            .sorted()
        let inputs = names.map { directory.appending(path: $0) }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedTerraform.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(names.count) Terraform files",
                executable: try context.tool(named: "FileEmbedder").url,
                arguments: ["EmbeddedTerraform", output.path] + inputs.map(\.path),
                inputFiles: inputs,
                outputFiles: [output])
        ]
    }
}
