import Coordinator
import Foundation
import ShoalSupport
import ZeroMQ

/// The keys of one embedded run, made fresh every time: the coordinator's,
/// one per agent, and the client's (`shoal create` itself), in
/// `OUTPUT/.shoal/keys` (0700, secrets 0600), with an allow-list of every
/// agent and the client in `OUTPUT/.shoal/keys/allow`.
struct EmbeddedKeys {
    let directory: String
    /// What `shoal create` connects with.
    let client: CurveClientKeys

    var allowDirectory: String { directory + "/allow" }
    func secretFile(_ name: String) -> String { "\(directory)/\(name).key" }
    func publicFile(_ name: String) -> String { "\(directory)/\(name).pub" }

    /// - Throws: `ShoalError(.io)` when the files cannot be written.
    static func make(in directory: String, agents: [String]) throws -> EmbeddedKeys {
        try SecureFile.createDirectory(directory, mode: 0o700)
        chmod(directory, 0o700)  // an older run's directory, say
        let allow = directory + "/allow"
        try SecureFile.createDirectory(allow, mode: 0o700)
        // Keys of an earlier run must not stay allowed.
        for file in (try? FileManager.default.contentsOfDirectory(atPath: allow)) ?? [] where file.hasSuffix(".pub") {
            unlink("\(allow)/\(file)")
        }
        let coordinator = try KeyFile.generate(name: "coordinator", directory: directory, overwrite: true)
        var client: KeyFile.Contents?
        for name in agents + ["client"] {
            let contents = try KeyFile.generate(name: name, directory: directory, overwrite: true)
            try KeyFile.writePublic(contents, to: "\(allow)/\(name).pub")
            if name == "client" { client = contents }
        }
        return EmbeddedKeys(
            directory: directory,
            client: CurveClientKeys(serverPublicKey: coordinator.publicKey, keyPair: client!.keyPair!))
    }
}
