import Foundation
import Protocol
import ShoalSupport
import Testing

@testable import Agents

@Suite struct PreflightTests {
    @Test func demoModeNeedsNothing() {
        let request = WorkflowRequest()
        for role in Role.allCases { #expect(Preflight.requirements(role: role, request: request).isEmpty) }
    }

    @Test func eachRoleAndTargetNeedsItsOwnTools() {
        func programs(_ role: Role, _ request: WorkflowRequest) -> [String] {
            Preflight.requirements(role: role, request: request).map { requirement in
                switch requirement {
                case .program(let name, _): name
                case .dockerDaemon: "docker daemon"
                case .rootOrSudo: "root or sudo"
                case .file(let path, _): path
                }
            }
        }
        var local = realRequest(target: .local)
        #expect(programs(.infra, local) == ["terraform", "kubectl", "root or sudo", "curl"])
        local.airgapDirectory = "/srv/k3s-airgap"
        #expect(programs(.infra, local) == ["terraform", "kubectl", "root or sudo"])
        #expect(
            programs(.infra, realRequest(target: .ssh)) == ["terraform", "kubectl", "ssh", "ssh-keyscan", "ssh-keygen"])
        #expect(programs(.infra, realRequest(target: .docker)) == ["terraform", "kubectl", "docker", "docker daemon"])
        #expect(programs(.argocd, local) == ["kubectl"])
        #expect(programs(.monitoring, local) == ["git", "kubectl"])
        #expect(programs(.validation, local) == ["kubectl"])
        #expect(programs(.planner, local).isEmpty && programs(.docs, local).isEmpty)
        var airgapped = realRequest()
        airgapped.argocdManifest = "/srv/argocd/install.yaml"
        #expect(programs(.argocd, airgapped) == ["kubectl", "/srv/argocd/install.yaml"])
    }

    @Test func missingProgramsAreNamedWithHowToInstallThem() async throws {
        let empty = temporaryDirectory("shoal-empty-path")
        defer { try? FileManager.default.removeItem(atPath: empty) }
        let problems = await Preflight.check(role: .infra, request: realRequest(), searchPath: empty)
        let names = problems.map(\.name)
        #expect(names.starts(with: ["terraform", "kubectl"]))
        #expect(names.contains("curl"))
        if getuid() != 0 { #expect(names.contains("root or passwordless sudo")) }
        let message = Preflight.error(problems, role: .infra).description
        #expect(message.contains("preflight failed for the infra agent"))
        #expect(
            message.contains(
                "terraform (provisions K3s; install: Terraform >= 1.10 from https://developer.hashicorp.com"))
        #expect(
            message.contains("kubectl (waits until the nodes are Ready; install: kubectl from https://kubernetes.io"))
        #expect(!message.contains("\n"), "one line, as the progress display shows it")
    }

    @Test func standInsOnThePathSatisfyTheLocalTarget() async throws {
        let standIns = try StandIns()
        defer { standIns.delete() }
        let problems = await Preflight.check(role: .infra, request: realRequest(), searchPath: standIns.directory)
        #expect(problems.isEmpty, "\(problems)")
        let validation = await Preflight.check(
            role: .validation, request: realRequest(), searchPath: standIns.directory)
        #expect(validation.isEmpty)
    }

    @Test func aDockerWhoseDaemonDoesNotAnswerIsReported() async throws {
        let directory = temporaryDirectory("shoal-docker")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let docker = """
            #!/bin/sh
            # Test stand-in: docker without a running daemon.
            echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2
            exit 1
            """
        try SecureFile.write(docker, to: directory + "/docker", mode: 0o755)
        let started = ContinuousClock.now
        let problems = await Preflight.check(role: .infra, request: realRequest(target: .docker), searchPath: directory)
        #expect(ContinuousClock.now - started < .seconds(30))
        #expect(problems.map(\.name) == ["terraform", "kubectl", "docker daemon"])
        #expect(problems.last?.remedy.contains("docker info") == true)
    }

    @Test func aMissingArgoCDManifestIsReported() async {
        var request = realRequest()
        request.argocdManifest = "/nonexistent/argocd-install.yaml"
        let problems = await Preflight.check(role: .argocd, request: request, searchPath: "/nonexistent")
        #expect(problems.map(\.name) == ["kubectl", "/nonexistent/argocd-install.yaml"])
    }
}

@Suite struct PlannerTests {
    @Test func aRealDeploymentStartsWithAPreflightPerRoleBeforeProvision() throws {
        let plan = try Planner.plan(for: realRequest())
        let preflights = plan.steps.filter { $0.name.hasPrefix("preflight/") }
        #expect(
            preflights.map(\.name) == [
                "preflight/infra", "preflight/argocd", "preflight/monitoring", "preflight/validation",
            ])
        #expect(preflights.allSatisfy { $0.needs == ["plan"] && !$0.critical })
        #expect(preflights.map(\.role) == [.infra, .argocd, .monitoring, .validation])
        let provision = try #require(plan.steps.first { $0.name == "provision" })
        #expect(Set(provision.needs) == Set(["plan"] + preflights.map(\.name)))
        #expect(provision.critical)
        #expect(plan.problems().isEmpty)
    }

    @Test func demoPlansHaveNoPreflightAndNoArgoCDMeansDirectApply() throws {
        var request = WorkflowRequest()
        #expect(try !Planner.plan(for: request).steps.contains { $0.name.hasPrefix("preflight/") })
        request.argocd = false
        let plan = try Planner.plan(for: request)
        #expect(!plan.steps.contains { $0.name == "gitops-engine" })
        #expect(plan.steps.first { $0.name == "monitoring" }?.needs == ["provision"])
        #expect(!plan.steps.contains { $0.name == "validate/argocd" || $0.name == "validate/applications" })
        request.realDeployment = true
        #expect(try !Planner.plan(for: request).steps.contains { $0.name == "preflight/argocd" })
    }
}
