import ArgumentParser
import Coordinator
import Foundation
import Protocol
import ShoalSupport

struct GetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Copy a workflow's artifacts (Terraform files, manifests, GitOps files, runbook) to this host.",
        discussion: """
            The coordinator writes the output tree on its own host; `get` asks it for a workflow's artifacts and \\
            writes them under -d DIR as the coordinator lays them out (terraform/WF, manifests/WF, docs/WF, ...). \\
            Sensitive artifacts (kubeconfig, passwords) are left out unless --sensitive; they are written 0600. \\
            One reply carries at most 32 MiB of artifacts: larger ones are named and left out. Without \\
            --coordinator the artifacts are read from the journal of an embedded run in -d DIR and written there \\
            again (files deleted by hand come back).

            Examples:
              shoal get k3s-dev-1a2b3c --coordinator tcp://10.0.0.5:7401 -d ./lab
              shoal get k3s-dev-1a2b3c --coordinator tcp://10.0.0.5:7401 -d ./lab --sensitive
            """)

    @Argument(help: "The workflow id.") var workflow: String
    @Flag(help: "Also copy the sensitive artifacts (kubeconfig, passwords), written 0600.") var sensitive = false
    @OptionGroup var source: SourceOptions

    func validate() throws { try checkWorkflowID(workflow) }

    func run() async throws {
        let reply: ArtifactsReply
        do {
            reply = try await fetch()
        } catch let error as ShoalError {
            fail(error.description)
        }
        let root = absolutePath(source.output)
        var written = 0
        for artifact in reply.artifacts {
            guard let path = artifact.path, let relative = Self.checkedPath(path, workflow: workflow) else {
                FileDescriptorIO.printError("skipped artifact with a path outside the workflow's tree\n")
                continue
            }
            let mode: mode_t = artifact.sensitive ? 0o600 : mode_t(artifact.mode & 0o755)
            do {
                try SecureFile.write(artifact.data, to: "\(root)/\(relative)", mode: mode)
            } catch let error as ShoalError {
                fail(error.description)
            }
            print("\(root)/\(relative)")
            written += 1
        }
        for path in reply.withheld {
            FileDescriptorIO.printError("withheld (sensitive; pass --sensitive): \(path)\n")
        }
        for path in reply.tooLarge {
            FileDescriptorIO.printError("left out (the reply would exceed 32 MiB): \(path)\n")
        }
        FileDescriptorIO.printError("\(written) file(s) of \(workflow) written under \(root)\n")
    }

    /// `<root>/<workflow>/...` with no `..`, `.` or empty part: a path that came from the network.
    static func checkedPath(_ path: String, workflow: String) -> String? {
        Artifact.isOutputPath(path, workflow: workflow) ? path : nil
    }

    private func fetch() async throws -> ArtifactsReply {
        let workflow = workflow
        let sensitive = sensitive
        if let coordinator = source.endpoint {
            return try await source.withClient(coordinator) { try $0.artifacts(workflow, sensitive: sensitive) }
        }
        let (journal, snapshot) = try source.local(workflow)
        return try journal.outputArtifacts(of: snapshot, sensitive: sensitive)
    }
}
