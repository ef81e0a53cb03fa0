import AgentRuntime
import Foundation
import Logging
import ShoalSupport

/// `shoal agent` keeps little of itself running: once its options are checked it replaces itself (`execv`, the
/// same pid, so a service manager or container sees no change) with `shoal-agent`, the lean agent built beside it
/// without Foundation. That one holds the bus connection and starts `shoal agent-worker`, this binary again, for the
/// role's handlers when a step comes; the worker stops after `--worker-idle` without a step.
enum LeanAgent {
    static let executableName = "shoal-agent"

    /// This executable's path, as the kernel knows it.
    static var currentExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// The lean agent beside this executable; nil when it is not there (a binary copied alone, say).
    static func executable() -> String? {
        let directory = (currentExecutable as NSString).deletingLastPathComponent
        let path = (directory as NSString).appendingPathComponent(executableName)
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    /// Becomes the lean agent. Returns only when that is not possible, having said why; the caller then runs the
    /// handlers in this process.
    static func replaceProcess(
        configuration: AgentConfiguration, workerArguments: [String], workerIdle: Duration, logLevel: String,
        exitWithParent: Bool, logger: Logger
    ) {
        guard let lean = executable() else {
            logger.notice(
                "no shoal-agent beside this binary; running the role's handlers in this process",
                metadata: ["binary": "\(currentExecutable)"])
            return
        }
        let launch = AgentLaunch(
            configuration: configuration, logLevel: logLevel, exitWithParent: exitWithParent,
            worker: [currentExecutable] + workerArguments, workerIdle: workerIdle)
        do {
            try launch.exec(lean)
        } catch {
            logger.warning(
                "cannot start the lean agent; running the role's handlers in this process",
                metadata: ["error": "\(error)"])
        }
    }
}
