import Foundation
import ShoalSupport
import Testing
import Yams

@testable import GitOps

@Suite struct ArgoApplicationsTests {
    @Test func anApplicationSyncsAutomaticallyWithPruneSelfHealAndTheFinalizer() throws {
        var spec = ApplicationSpec(
            name: "monitoring", repoURL: "http://10.0.0.5:8418/lab", path: "monitoring",
            destinationNamespace: "monitoring")
        spec.targetRevision = "main"
        let doc = try #require(try yamlDocuments(ArgoApplications.application(spec)).first)
        #expect(doc["apiVersion"] as? String == "argoproj.io/v1alpha1")
        #expect(kind(doc) == "Application")
        #expect(value(doc, "metadata", "namespace") as? String == "argocd")
        #expect(value(doc, "metadata", "finalizers") as? [String] == ["resources-finalizer.argocd.argoproj.io"])
        #expect(value(doc, "spec", "syncPolicy", "automated", "prune") as? Bool == true)
        #expect(value(doc, "spec", "syncPolicy", "automated", "selfHeal") as? Bool == true)
        let options = value(doc, "spec", "syncPolicy", "syncOptions") as? [String] ?? []
        #expect(Set(options) == ["CreateNamespace=true", "ServerSideApply=true"])
        #expect(value(doc, "spec", "source", "repoURL") as? String == "http://10.0.0.5:8418/lab")
        #expect(value(doc, "spec", "source", "targetRevision") as? String == "main")
        #expect(value(doc, "spec", "source", "path") as? String == "monitoring")
        #expect(value(doc, "spec", "destination", "server") as? String == "https://kubernetes.default.svc")
        #expect(value(doc, "spec", "destination", "namespace") as? String == "monitoring")
        #expect(value(doc, "spec", "project") as? String == "default")
    }

    @Test func everyApplicationPointsAtAPathThatExistsInTheRepository() async throws {
        let home = try makeTemporaryDirectory()
        defer { removeDirectory(home) }
        let repository = GitRepository(path: "\(home)/repo", runner: isolatedRunner(home: home))
        try await repository.initialize()
        let (files, root) = gitOpsFiles()
        try repository.write(files)
        let outcome = try await repository.commitAll(message: "Monitoring stack")
        let tracked = try await repository.git(["ls-tree", "-r", "--name-only", outcome.sha]).standardOutput
            .split(separator: "\n").map(String.init)
        let directories = Set(
            tracked.flatMap { path in
                let parts = path.split(separator: "/")
                return (1..<max(parts.count, 1)).map { parts.prefix($0).joined(separator: "/") }
            })
        let applications = try allDocuments(files).map(\.doc).filter { kind($0) == "Application" }
        #expect(applications.count == 2)
        for application in applications {
            let path = try #require(value(application, "spec", "source", "path") as? String)
            #expect(directories.contains(path), "\(name(application)) -> \(path)")
            #expect(tracked.contains { $0.hasPrefix(path + "/") && $0.hasSuffix(".yaml") }, "\(path) holds manifests")
        }
        // The root syncs apps/, which holds exactly one Application per component.
        let rootDoc = try #require(try yamlDocuments(root.contents).first)
        #expect(value(rootDoc, "spec", "source", "path") as? String == "apps")
        #expect(tracked.filter { $0.hasPrefix("apps/") } == ["apps/monitoring.yaml"])
        #expect(tracked.contains("root-app.yaml"))
    }

    @Test func argoCDInstallStepsArePinnedServerSideAndExposeNodePort30080() throws {
        let install = ArgoCDInstall()
        #expect(install.version == "v3.5.1")
        #expect(
            install.manifestURL == "https://raw.githubusercontent.com/argoproj/argo-cd/v3.5.1/manifests/install.yaml")
        let steps = install.kubectlSteps()
        #expect(steps.first == ["create", "namespace", "argocd"])
        let apply = try #require(steps.first { $0.first == "apply" })
        #expect(apply.contains("--server-side") && apply.contains("--force-conflicts"))
        #expect(apply.last == install.manifestURL)
        let insecure = try #require(steps.first { $0.contains("argocd-cmd-params-cm") })
        let patch = try #require(insecure.last)
        let data = try JSONSerialization.jsonObject(with: Data(patch.utf8)) as? [String: Any]
        #expect(value(data, "data", "server.insecure") as? String == "true")
        #expect(steps.contains(["rollout", "restart", "deployment/argocd-server", "-n", "argocd"]))
        let service = try #require(steps.last)
        let servicePatch = try JSONSerialization.jsonObject(with: Data(try #require(service.last).utf8))
        #expect(value(servicePatch, "spec", "type") as? String == "NodePort")
        #expect((value(servicePatch, "spec", "ports") as? [[String: Any]])?.first?["nodePort"] as? Int == 30080)
        #expect(!steps.joined().contains("--kubeconfig"))

        let airGapped = ArgoCDInstall(version: "v3.4.2", manifestPath: "/opt/argocd/install.yaml")
        #expect(airGapped.kubectlSteps()[1].last == "/opt/argocd/install.yaml")
        #expect(
            ArgoCDInstall.isAlreadyExists(
                standardError: #"Error from server (AlreadyExists): namespaces "argocd" already exists"#))
        #expect(
            !ArgoCDInstall.isAlreadyExists(standardError: "error: You must be logged in to the server (Unauthorized)"))
        #expect(install.waitSteps().count == 3)
    }
}

@Suite struct InClusterGitServerTests {
    @Test func theServerIsPinnedPersistentAndReachedByItsServiceName() throws {
        let text = InClusterGitServer.manifests()
        let documents = try Yams.load_all(yaml: text).compactMap { $0 as? [String: Any] }
        let kinds = documents.compactMap { $0["kind"] as? String }
        #expect(kinds == ["Namespace", "PersistentVolumeClaim", "Deployment", "Service", "Service"])
        #expect(InClusterGitServer.image.hasPrefix("docker.gitea.com/gitea:1.25.4"))
        #expect(!InClusterGitServer.image.contains("latest"))
        #expect(text.contains("image: \(InClusterGitServer.image)"))
        #expect(text.contains("claimName: shoal-git-data"))
        #expect(text.contains("nodePort: 30418"))
        #expect(text.contains("GITEA__repository__ENABLE_PUSH_CREATE_USER"))
        // The password is referenced, never written into the manifests.
        #expect(text.contains("secretKeyRef") && !text.contains("stringData"))
        #expect(
            InClusterGitServer.repoURL(workflow: "lab")
                == "http://shoal-git.shoal-gitops.svc.cluster.local/shoal/lab.git")
        #expect(InClusterGitServer.isInCluster(InClusterGitServer.repoURL(workflow: "lab")))
        #expect(InClusterGitServer.pushURL(workflow: "lab", nodeAddress: "fd00::1") == "http://[fd00::1]:30418/shoal/lab.git")
        #expect(InClusterGitServer.pushURL(workflow: "lab", base: "http://127.0.0.1:8080/") == "http://127.0.0.1:8080/shoal/lab.git")
        let secret = InClusterGitServer.secretManifest(password: "a\"b: c")
        let parsed = try #require(try Yams.load(yaml: secret) as? [String: Any])
        #expect((parsed["stringData"] as? [String: Any])?["password"] as? String == "a\"b: c")
    }
}
