import ArgumentParser
import Coordinator
import Foundation
import Protocol
import ShoalSupport

struct CreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a K3s cluster with Argo CD and monitoring, and validate it.",
        discussion: """
            Without --coordinator, shoal starts a coordinator and one process per agent on loopback, runs the \
            workflow, and stops them. With --coordinator it submits to a running coordinator.
            """)

    @Option(name: [.short, .long], help: "Platform (only k3s is supported).") var platform = "k3s"
    @Option(name: [.short, .long], help: "Number of nodes, 1 to 99.") var nodes = 1
    @Option(name: [.short, .long], help: "Environment: development, staging or production (production needs 3+ nodes).")
    var environment = "development"
    @Flag(inversion: .prefixedNo, help: "Deploy the monitoring stack (Prometheus, Grafana).") var monitoring = true
    @Flag(inversion: .prefixedNo, help: "Deploy Headlamp, the Kubernetes web UI.") var headlamp = true
    @Flag(name: [.customLong("real-deployment"), .customLong("real")], help: "Deploy for real instead of the demo.")
    var realDeployment = false
    @Option(name: [.short, .long], help: "Output directory.") var output = "output"
    @Option(help: "Validation agents to start (embedded mode).") var validationWorkers = 2
    @Option(help: "Submit to a running coordinator, e.g. tcp://10.0.0.5:7401.") var coordinator: String?
    @Option(help: "How long each simulated step lasts, e.g. 2s (demo mode).") var simDelay = "0"
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        var request = try makeRequest()
        request.realDeployment = false
        if let problem = request.problems().first { throw ValidationError(problem) }
        if realDeployment {
            throw ValidationError("--real-deployment is not available yet; run without it for the demo")
        }
        guard (1...32).contains(validationWorkers) else {
            throw ValidationError("--validation-workers must be between 1 and 32")
        }
        if let coordinator, !coordinator.hasPrefix("tcp://") && !coordinator.hasPrefix("ipc://") {
            throw ValidationError("--coordinator must be an endpoint such as tcp://host:7401")
        }
    }

    func makeRequest() throws -> WorkflowRequest {
        var request = WorkflowRequest()
        request.platform = platform.lowercased()
        guard let environment = Environment(rawValue: environment.lowercased()) else {
            throw ValidationError("--environment must be development, staging or production, got '\(environment.prefix(40))'")
        }
        request.environment = environment
        request.nodes = nodes
        request.monitoring = monitoring
        request.headlamp = headlamp && monitoring
        request.realDeployment = realDeployment
        guard let delay = parseDuration(simDelay), delay <= .seconds(600) else {
            throw ValidationError("--sim-delay must be a duration up to 10m, e.g. 2s or 500ms")
        }
        request.simDelayMilliseconds = Int(delay.milliseconds)
        return request
    }

    func run() async throws {
        let logger = logging.bootstrap(label: "shoal.create")
        let request = try makeRequest()
        let display = ProgressDisplay()
        let outcome: WorkflowSnapshot
        if let coordinator {
            outcome = try await runRemote(request, coordinator: coordinator, display: display)
        } else {
            let outputPath = absolutePath(output)
            do {
                try SecureFile.createDirectory(outputPath)
                try SecureFile.createDirectory(outputPath + "/.shoal", mode: 0o700)
            } catch let error as ShoalError {
                fail("cannot use output directory '\(output)': \(error.cause ?? error.message)")
            }
            if ProcessRunner.locate("terraform") == nil {
                print("note: terraform is not installed; Terraform files are written, init/validate/plan are skipped")
            }
            let cluster = EmbeddedCluster(
                executable: selfExecutable(), output: outputPath, validationWorkers: validationWorkers,
                logLevel: logging.logLevel, logger: logger)
            do {
                outcome = try await cluster.run { endpoints in
                    try await runRemote(request, coordinator: endpoints.control, display: display)
                }
            } catch let error as ShoalError {
                fail(error.description)
            }
        }
        display.summary(outcome, output: coordinator == nil ? output : nil)
        if outcome.state != .succeeded { throw ExitCode.failure }
    }

    private func runRemote(_ request: WorkflowRequest, coordinator: String, display: ProgressDisplay) async throws
        -> WorkflowSnapshot
    {
        try await runBlocking {
            let client = try CoordinatorClient(endpoint: coordinator)
            let accepted = try client.submit(request)
            display.submitted(accepted.workflow)
            return try client.follow(accepted.workflow, eventsPort: accepted.eventsPort) { display.update($0) }
        }
    }
}

/// Runs blocking socket code on its own thread.
func runBlocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            do {
                continuation.resume(returning: try body())
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }
}

func absolutePath(_ path: String) -> String {
    if path.hasPrefix("/") { return path }
    return FileManager.default.currentDirectoryPath + "/" + path
}

/// The path of the running shoal binary, to start children from.
func selfExecutable() -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
}
