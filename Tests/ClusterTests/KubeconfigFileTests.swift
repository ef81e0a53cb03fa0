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
        try KubeconfigFile.merge(kubeconfig: Self.k3s, as: "shoal-wf", into: path, owner: "wf")
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
        try KubeconfigFile.merge(kubeconfig: Self.k3s, as: "shoal-wf", into: path, owner: "wf")
        #expect(names(try load(path), "contexts") == ["prod", "shoal-wf"])

        #expect(try KubeconfigFile.remove(name: "shoal-wf", owner: "wf", from: path))
        let removed = try load(path)
        #expect(names(removed, "clusters") == ["prod"])
        #expect(names(removed, "users") == ["alice"])
        #expect(names(removed, "contexts") == ["prod"])
        #expect(removed["current-context"] as? String == "prod")
        #expect(try !KubeconfigFile.remove(name: "shoal-wf", owner: "wf", from: path), "a second removal changes nothing")
    }

    @Test func aMissingFileIsCreatedWithTheContextAsCurrent() throws {
        let directory = scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/.kube/config"
        try KubeconfigFile.merge(kubeconfig: Self.k3s, as: "shoal-wf", into: path, owner: "wf")
        let created = try load(path)
        #expect(created["current-context"] as? String == "shoal-wf")
        #expect(created["kind"] as? String == "Config")
        #expect(SecureFile.mode(of: path) == 0o600)
        #expect(try KubeconfigFile.remove(name: "shoal-wf", owner: "wf", from: path))
        #expect(try load(path)["current-context"] as? String == "")
        #expect(try !KubeconfigFile.remove(name: "shoal-wf", owner: "wf", from: directory + "/absent"))
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
        try KubeconfigFile.merge(kubeconfig: Self.k3s, as: "shoal-wf", into: directory + "/config", owner: "wf")
        let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/config")
        #expect(attributes[.type] as? FileAttributeType == .typeSymbolicLink)
        #expect(KubeconfigFile.hasContext("shoal-wf", in: directory + "/dotfiles/kubeconfig"))
    }

    @Test func somethingThatIsNotAKubeconfigIsRefused() throws {
        let directory = scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(throws: ShoalError.self) {
            try KubeconfigFile.merge(kubeconfig: "apiVersion: v1\nkind: Config\n", as: "x", into: directory + "/c", owner: "wf")
        }
        try SecureFile.write("- just\n- a list\n", to: directory + "/list")
        #expect(throws: ShoalError.self) {
            try KubeconfigFile.merge(kubeconfig: Self.k3s, as: "x", into: directory + "/list", owner: "wf")
        }
        #expect(FileManager.default.contents(atPath: directory + "/list") == Data("- just\n- a list\n".utf8))
    }

    /// A user's kubeconfig as kubectl writes it (keys sorted, lists not indented), with two contexts.
    static let kubectlWritten = """
        apiVersion: v1
        clusters:
        - cluster:
            certificate-authority-data: cGxhY2Vob2xkZXItY2E=
            server: https://prod.example.com:6443
          name: prod
        - cluster:
            insecure-skip-tls-verify: true
            server: "https://127.0.0.1:6443"
          name: kind-dev
        contexts:
        - context:
            cluster: prod
            namespace: payments
            user: alice
          name: prod
        - context:
            cluster: kind-dev
            user: kind-dev
          name: kind-dev
        current-context: kind-dev
        kind: Config
        preferences: {}
        users:
        - name: alice
          user:
            exec:
              apiVersion: client.authentication.k8s.io/v1
              args:
              - get-token
              - --login
              command: kubelogin
              env: null
              provideClusterInfo: false
        - name: kind-dev
          user:
            token: 'not-a-real-token'

        """

    @Test func mergeThenRemoveLeavesAKubectlWrittenFileByteIdentical() throws {
        let directory = scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/config"
        try SecureFile.write(Self.kubectlWritten, to: path, mode: 0o600)
        let original = try #require(FileManager.default.contents(atPath: path))
        try KubeconfigFile.merge(kubeconfig: Self.k3s, as: "lab", into: path, owner: "wf")
        let merged = try String(contentsOfFile: path, encoding: .utf8)
        #expect(merged.contains("current-context: kind-dev\n"), "the current context stays: \(merged)")
        // Every line of the original is still there, in order: the other entries are byte for byte as they were.
        var remaining = Self.kubectlWritten.split(separator: "\n", omittingEmptySubsequences: false)[...]
        for line in merged.split(separator: "\n", omittingEmptySubsequences: false) where line == remaining.first {
            remaining = remaining.dropFirst()
        }
        #expect(remaining.isEmpty || remaining == [""], "lines changed or lost: \(remaining)\n\(merged)")
        #expect(KubeconfigFile.contextOwner("lab", in: path) == "wf")
        #expect(KubeconfigFile.contextOwner("prod", in: path) == nil)

        #expect(try KubeconfigFile.remove(name: "lab", owner: "wf", from: path))
        #expect(FileManager.default.contents(atPath: path) == original, "byte-identical after removal")
    }

    @Test func anEntryShoalDidNotWriteIsRefusedUnlessForced() throws {
        let directory = scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/config"
        try SecureFile.write(Self.kubectlWritten, to: path, mode: 0o600)
        let original = try #require(FileManager.default.contents(atPath: path))
        let error = #expect(throws: ShoalError.self) {
            try KubeconfigFile.merge(kubeconfig: Self.k3s, as: "prod", into: path, owner: "wf")
        }
        #expect(error?.code == KubeconfigFile.foreignEntry)
        #expect(error?.message.contains("'prod' that shoal did not write") == true, "\(String(describing: error))")
        #expect(FileManager.default.contents(atPath: path) == original, "nothing written")
        // Removal by name takes nothing that is not the workflow's.
        #expect(try !KubeconfigFile.remove(name: "prod", owner: "wf", from: path))
        #expect(FileManager.default.contents(atPath: path) == original)

        // Entries shoal wrote for another workflow are replaced, and then belong to this one.
        try KubeconfigFile.merge(kubeconfig: Self.k3s, as: "lab", into: path, owner: "first")
        try KubeconfigFile.merge(kubeconfig: Self.k3s, as: "lab", into: path, owner: "second")
        #expect(KubeconfigFile.contextOwner("lab", in: path) == "second")
        #expect(try !KubeconfigFile.remove(name: "lab", owner: "first", from: path))
        #expect(try KubeconfigFile.remove(name: "lab", owner: "second", from: path))

        try KubeconfigFile.merge(kubeconfig: Self.k3s, as: "prod", into: path, owner: "wf", force: true)
        #expect(KubeconfigFile.contextOwner("prod", in: path) == "wf")
    }

    @Test func aBackupIsACopyBesideTheFileReadableByItsOwnerOnly() throws {
        let directory = scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/config"
        #expect(try KubeconfigFile.backup(path) == nil, "no file, no backup")
        try SecureFile.write(Self.kubectlWritten, to: path, mode: 0o644)
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let first = try #require(try KubeconfigFile.backup(path, now: now))
        #expect(first == path + ".shoal-backup-20270115T080000Z")
        #expect(SecureFile.mode(of: first) == 0o600)
        #expect(FileManager.default.contents(atPath: first) == FileManager.default.contents(atPath: path))
        let second = try #require(try KubeconfigFile.backup(path, now: now))
        #expect(second != first, "a second backup in the same second does not overwrite the first")
    }

    @Test func flowStyleEntriesStayFlowStyle() throws {
        let directory = scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/config"
        let text = """
            apiVersion: v1
            kind: Config
            clusters:
            - name: prod
              cluster: {server: "https://prod.example.com:6443"}
            contexts:
            - name: prod
              context: {cluster: prod, user: alice}
            current-context: prod
            users:
            - name: alice
              user: {token: not-a-real-token}

            """
        try SecureFile.write(text, to: path, mode: 0o600)
        try KubeconfigFile.merge(kubeconfig: Self.k3s, as: "lab", into: path, owner: "wf")
        #expect(try KubeconfigFile.remove(name: "lab", owner: "wf", from: path))
        #expect(try String(contentsOfFile: path, encoding: .utf8) == text)
    }
}
