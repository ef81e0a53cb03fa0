import AgentRuntime
import Foundation
import Protocol
import ShoalSupport

/// Something a real deployment needs on an agent's machine that is not there.
public struct PreflightProblem: Sendable, Equatable, CustomStringConvertible {
    /// The program or condition, e.g. `terraform` or `docker daemon`.
    public var name: String
    /// What it is needed for.
    public var purpose: String
    /// How to get it.
    public var remedy: String

    public init(name: String, purpose: String, remedy: String) {
        self.name = name
        self.purpose = purpose
        self.remedy = remedy
    }

    public var description: String { "\(name) (\(purpose); install: \(remedy))" }
}

/// The checks a real deployment runs on each agent's machine before it changes anything: the programs the role
/// runs (terraform, kubectl, git) and, for the infra role, what its target needs (docker, ssh, or root/sudo).
public enum Preflight {
    /// One requirement of a role.
    public enum Requirement: Sendable, Equatable {
        /// A program on PATH.
        case program(String, purpose: String)
        /// `docker info` answers: the daemon runs and this user may use it.
        case dockerDaemon
        /// Root, or `sudo` without a password (`sudo -n true`).
        case rootOrSudo
        /// A file this machine must have (the Argo CD manifest of an air-gapped install).
        case file(String, purpose: String)
    }

    /// What `role` needs for `request` (nothing in demo mode, where nothing is deployed).
    /// - Parameters:
    ///   - role: the agent's role.
    ///   - request: the workflow's request.
    public static func requirements(role: Role, request: WorkflowRequest) -> [Requirement] {
        guard request.realDeployment else { return [] }
        switch role {
        case .planner, .docs, .bench:
            return []
        case .infra:
            var list: [Requirement] = [
                .program("terraform", purpose: "provisions K3s"),
                .program("kubectl", purpose: "waits until the nodes are Ready"),
            ]
            switch request.target {
            case .local:
                list.append(.rootOrSudo)
                if request.airgapDirectory == nil {
                    list.append(.program("curl", purpose: "downloads the K3s install script"))
                }
            case .ssh:
                list.append(.program("ssh", purpose: "fetches the kubeconfig from the first server"))
                list.append(.program("ssh-keyscan", purpose: "reads the hosts' SSH keys before anything is installed"))
                list.append(.program("ssh-keygen", purpose: "compares them with known_hosts"))
            case .docker:
                list.append(.program("docker", purpose: "runs the K3s containers"))
                list.append(.dockerDaemon)
            }
            return list
        case .argocd:
            var list: [Requirement] = [.program("kubectl", purpose: "installs Argo CD")]
            if let manifest = request.argocdManifest {
                list.append(.file(manifest, purpose: "the Argo CD install manifest (--argocd-manifest)"))
            }
            return list
        case .monitoring:
            return [
                .program("git", purpose: "commits and serves the GitOps repository"),
                .program(
                    "kubectl", purpose: request.argocd ? "applies the Argo CD Applications" : "applies the manifests"),
            ]
        case .validation:
            return [.program("kubectl", purpose: "runs the health checks")]
        }
    }

    /// Checks every requirement of `role`; each probe is bounded by `timeout`.
    /// - Parameters:
    ///   - role: the agent's role.
    ///   - request: the workflow's request.
    ///   - searchPath: the directories to look for programs in, `PATH`'s syntax; this process's PATH when nil.
    ///   - runner: runs the probes (`docker info`, `sudo -n true`).
    ///   - timeout: the bound of each probe.
    /// - Returns: what is missing, in the order of `requirements(role:request:)`; empty when all is there.
    public static func check(
        role: Role, request: WorkflowRequest, searchPath: String? = nil, runner: ProcessRunner = ProcessRunner(),
        timeout: Duration = .seconds(10)
    ) async -> [PreflightProblem] {
        var problems: [PreflightProblem] = []
        let requirements = requirements(role: role, request: request)
        let docker = locate("docker", in: searchPath)
        for requirement in requirements {
            switch requirement {
            case .program(let name, let purpose):
                if locate(name, in: searchPath) == nil {
                    problems.append(PreflightProblem(name: name, purpose: purpose, remedy: installHint(name)))
                }
            case .dockerDaemon:
                guard let docker else { continue }
                let result = try? await runner.run(
                    docker, ["info", "--format", "{{.ServerVersion}}"], timeout: timeout)
                if result?.succeeded != true {
                    problems.append(
                        PreflightProblem(
                            name: "docker daemon", purpose: "runs the K3s containers",
                            remedy: "start Docker (`systemctl start docker`) and make sure `docker info` works for "
                                + "this user (add it to the `docker` group)"))
                }
            case .rootOrSudo:
                if getuid() == 0 { continue }
                var sudo: ProcessResult?
                if let program = locate("sudo", in: searchPath) {
                    sudo = try? await runner.run(program, ["-n", "true"], timeout: timeout)
                }
                if sudo?.succeeded != true {
                    problems.append(
                        PreflightProblem(
                            name: "root or passwordless sudo", purpose: "installs K3s on this machine",
                            remedy: "run shoal as root, or install sudo and allow this user to run it without a "
                                + "password (the install runs `sudo -n`)"))
                }
            case .file(let path, let purpose):
                if !FileManager.default.isReadableFile(atPath: path) {
                    problems.append(
                        PreflightProblem(
                            name: path, purpose: purpose,
                            remedy: "copy Argo CD's install.yaml of the release you pin to this path on this machine"))
                }
            }
        }
        return problems
    }

    /// Fails when something is missing.
    /// - Throws: `ShoalError(.preflightFailed)` listing every problem and how to fix it.
    public static func require(role: Role, request: WorkflowRequest) async throws {
        let problems = await check(role: role, request: request)
        if !problems.isEmpty { throw error(problems, role: role) }
    }

    /// The error for missing requirements: one line naming each, what it is for, and how to install it.
    public static func error(_ problems: [PreflightProblem], role: Role) -> ShoalError {
        ShoalError(
            .preflightFailed,
            "real deployment preflight failed for the \(role.rawValue) agent on \(hostName()): missing "
                + problems.map(\.description).joined(separator: "; "))
    }

    /// The full path of `name` in the directories of `searchPath` (this process's PATH when nil).
    static func locate(_ name: String, in searchPath: String?) -> String? {
        guard let searchPath else { return ProcessRunner.locate(name) }
        for directory in searchPath.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// How to install a program, for the error message.
    public static func installHint(_ program: String) -> String {
        switch program {
        case "terraform":
            "Terraform >= 1.10 from https://developer.hashicorp.com/terraform/install "
                + "(Debian/Ubuntu: add HashiCorp's apt repository, then `apt-get install terraform`)"
        case "kubectl":
            "kubectl from https://kubernetes.io/docs/tasks/tools/ "
                + "(Debian/Ubuntu: add the pkgs.k8s.io apt repository, then `apt-get install kubectl`)"
        case "git": "`apt-get install git` (or your system's package manager)"
        case "docker":
            "Docker Engine from https://docs.docker.com/engine/install/, then add this user to the `docker` group"
        case "ssh", "ssh-keyscan", "ssh-keygen": "`apt-get install openssh-client`"
        case "curl": "`apt-get install curl`, or install without downloads with --airgap-dir"
        default: "install \(program) and put it on PATH"
        }
    }

    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "this machine" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Runs a role's preflight as its own step (`preflight/<role>`), and again as the first thing of every step of a
/// real deployment: the plan's preflight steps may have run on another agent of the role, on another machine.
struct PreflightGate: StepHandler {
    let role: Role
    let inner: any StepHandler

    func run(_ context: StepContext) async throws -> StepOutput {
        if case .preflight = context.step {
            try await Preflight.require(role: role, request: context.request)
            let names = Preflight.requirements(role: role, request: context.request).map { requirement in
                switch requirement {
                case .program(let name, _): name
                case .dockerDaemon: "docker daemon"
                case .rootOrSudo: getuid() == 0 ? "root" : "sudo"
                case .file(let path, _): (path as NSString).lastPathComponent
                }
            }
            return try StepOutput(
                summary: names.isEmpty
                    ? "nothing to check on \(Preflight.hostName())"
                    : "\(names.joined(separator: ", ")) ready on \(Preflight.hostName())",
                typed: PreflightOutput(host: Preflight.hostName(), checked: names))
        }
        try await Preflight.require(role: role, request: context.request)
        return try await inner.run(context)
    }
}

extension ShoalError.Code {
    /// A real deployment cannot start: a program or permission it needs is missing.
    public static let preflightFailed = ShoalError.Code("preflight-failed")
}
