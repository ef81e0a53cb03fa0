import Foundation
import ShoalSupport
import Testing
import Yams

@testable import Cluster

@Suite struct KubeconfigFileTests {
    /// A K3s kubeconfig (`/etc/rancher/k3s/k3s.yaml` shape) with placeholder credentials.
    static let k3s = """
        apiVersion: v1
        clusters:
        - cluster:
            certificate-authority-data: cGxhY2Vob2xkZXItY2E=
            server: https://10.0.0.5:6443
          name: default
        contexts:
        - context:
            cluster: default
            user: default
          name: default
        current-context: default
        kind: Config
        preferences: {}
        users:
        - name: default
          user:
            client-certificate-data: cGxhY2Vob2xkZXItY2VydA==
            client-key-data: cGxhY2Vob2xkZXIta2V5
        """

    /// A user's kubeconfig with entries of its own.
    static let existing = """
        apiVersion: v1
        kind: Config
        clusters:
        - name: prod
          cluster:
            server: https://prod.example.com:6443
        contexts:
        - name: prod
          context:
            cluster: prod
            user: alice
            namespace: payments
        current-context: prod
        users:
        - name: alice
          user:
            exec:
              apiVersion: client.authentication.k8s.io/v1
              command: kubelogin
              args: [get-token]
        preferences:
          colors: true
        """

    func scratch() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("shoal-kubeconfig-\(UUID().uuidString)").path
    }

    func load(_ path: String) throws -> [String: Any] {
        try #require(try Yams.load(yaml: String(contentsOfFile: path, encoding: .utf8)) as? [String: Any])
    }

    func names(_ document: [String: Any], _ key: String) -> [String] {
        (document[key] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
    }

    @Test func mergeAddsOneContextAndKeepsEverythingElse() throws {
        let directory = scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/config"
        try SecureFile.write(Self.existing, to: path, mode: 0o644)
        try KubeconfigFile.merge(kubeconfig: Self.k3s, as: "shoal-wf", into: path)
        let merged = try load(path)
        #expect(names(merged, "clusters") == ["prod", "shoal-wf"])
        #expect(names(merged, "users") == ["alice", "shoal-wf"])
        #expect(names(merged, "contexts") == ["prod", "shoal-wf"])
        #expect(merged["current-context"] as? String == "prod", "the user's current context stays")
        let prod = (merged["contexts"] as? [[String: Any]])?.first?["context"] as? [String: Any]
        #expect(prod?["namespace"] as? String == "payments")
        #expect((merged["preferences"] as? [String: Any])?["colors"] as? Bool == true)
        let cluster = (merged["clusters"] as? [[String: Any]])?.last?["cluster"] as? [String: Any]
        #expect(cluster?["server"] as? String == "https://10.0.0.5:6443")
        #expect(SecureFile.mode(of: path) == 0o600)
        #expect(KubeconfigFile.hasContext("shoal-wf", in: path))

        // Merging again replaces the entries instead of adding more.
        try KubeconfigFile.merge(kubeconfig: Self.k3s, as: "shoal-wf", into: path)
        #expect(names(try load(path), "contexts") == ["prod", "shoal-wf"])

        #expect(try KubeconfigFile.remove(name: "shoal-wf", from: path))
        let removed = try load(path)
        #expect(names(removed, "clusters") == ["prod"])
        #expect(names(removed, "users") == ["alice"])
        #expect(names(removed, "contexts") == ["prod"])
        #expect(removed["current-context"] as? String == "prod")
        #expect(try !KubeconfigFile.remove(name: "shoal-wf", from: path), "a second removal changes nothing")
    }

    @Test func aMissingFileIsCreatedWithTheContextAsCurrent() throws {
        let directory = scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/.kube/config"
        try KubeconfigFile.merge(kubeconfig: Self.k3s, as: "shoal-wf", into: path)
        let created = try load(path)
        #expect(created["current-context"] as? String == "shoal-wf")
        #expect(created["kind"] as? String == "Config")
        #expect(SecureFile.mode(of: path) == 0o600)
        #expect(try KubeconfigFile.remove(name: "shoal-wf", from: path))
        #expect(try load(path)["current-context"] as? String == "")
        #expect(try !KubeconfigFile.remove(name: "shoal-wf", from: directory + "/absent"))
    }

    @Test func theDefaultPathFollowsKUBECONFIG() {
        #expect(KubeconfigFile.defaultPath(environment: ["HOME": "/home/a"]) == "/home/a/.kube/config")
        #expect(
            KubeconfigFile.defaultPath(environment: ["HOME": "/home/a", "KUBECONFIG": "/x/one:/x/two"]) == "/x/one")
        #expect(
            KubeconfigFile.defaultPath(environment: ["HOME": "/home/a", "KUBECONFIG": ""]) == "/home/a/.kube/config")
    }

    @Test func aSymbolicLinkIsFollowed() throws {
        let directory = scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try SecureFile.write(Self.existing, to: directory + "/dotfiles/kubeconfig", mode: 0o600)
        try FileManager.default.createSymbolicLink(
            atPath: directory + "/config", withDestinationPath: directory + "/dotfiles/kubeconfig")
        try KubeconfigFile.merge(kubeconfig: Self.k3s, as: "shoal-wf", into: directory + "/config")
        let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/config")
        #expect(attributes[.type] as? FileAttributeType == .typeSymbolicLink)
        #expect(KubeconfigFile.hasContext("shoal-wf", in: directory + "/dotfiles/kubeconfig"))
    }

    @Test func somethingThatIsNotAKubeconfigIsRefused() throws {
        let directory = scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(throws: ShoalError.self) {
            try KubeconfigFile.merge(kubeconfig: "apiVersion: v1\nkind: Config\n", as: "x", into: directory + "/c")
        }
        try SecureFile.write("- just\n- a list\n", to: directory + "/list")
        #expect(throws: ShoalError.self) {
            try KubeconfigFile.merge(kubeconfig: Self.k3s, as: "x", into: directory + "/list")
        }
        #expect(FileManager.default.contents(atPath: directory + "/list") == Data("- just\n- a list\n".utf8))
    }
}
