import Foundation
import Testing

@testable import Cluster

/// What a kustomize build of the model's repo-server is keyed by: a directory that reaches nothing outside by its
/// files alone, anything else by the whole tree.
@Suite struct KustomizeInputTests {
    static let argocd: [(path: String, contents: String)] = [
        ("argocd/kustomization.yaml", "resources: [install.yaml]\npatches: [{path: patch.yaml}]\n"),
        ("argocd/install.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"),
        ("argocd/patch.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: v}\n"),
    ]

    @Test func aDirectoryThatReachesNothingOutsideDependsOnItsFilesAlone() throws {
        let tree = Self.argocd + [("monitoring/10-prometheus.yaml", "kind: Service\n"), ("argocdx/a.yaml", "x: 1\n")]
        let inside = try #require(SimulatedKustomize.selfContained(tree, directory: "argocd"))
        #expect(inside.map(\.path) == Self.argocd.map(\.path))
    }

    @Test(arguments: ["resources: [../base]\n", "patches: [{path: ../../patch.yaml}]\n"])
    func aDirectoryThatNamesAParentDependsOnTheWholeTree(kustomization: String) {
        let tree = [("web/overlays/production/kustomization.yaml", kustomization), ("web/base/a.yaml", "x: 1\n")]
        #expect(SimulatedKustomize.selfContained(tree, directory: "web/overlays/production") == nil)
    }

    @Test func theRootDependsOnTheWholeTree() {
        #expect(SimulatedKustomize.selfContained(Self.argocd, directory: "") == nil)
        #expect(SimulatedKustomize.selfContained(Self.argocd, directory: ".") == nil)
    }

    @Test func aBuildOfTheSameDirectoryInAnotherTreeHasTheSameInputAndAChangeInsideDoesNot() async throws {
        func input(_ tree: [(path: String, contents: String)]) throws -> [String] {
            try SimulatedKustomize.buildInput(tree, directory: "argocd").flatMap { [$0.path, $0.contents] }
        }
        let other = Self.argocd.reversed() + [("monitoring/a.yaml", "kind: Service\n")]
        #expect(try input(Self.argocd) == input(other))
        var changed = Self.argocd
        changed[2].contents = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: w}\n"
        #expect(try input(Self.argocd) != input(changed))

        let built = try await SimulatedKustomize.render(tree: other, directory: "argocd", useKubectl: false)
        #expect(built.first?.body["data", "k"]?.string == "v")
        let rebuilt = try await SimulatedKustomize.render(tree: changed, directory: "argocd", useKubectl: false)
        #expect(rebuilt.first?.body["data", "k"]?.string == "w")
    }
}
