import ArgumentParser
import Foundation
import Logging
import Protocol
import ShoalSupport

@main
struct Shoal: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shoal",
        abstract: "Automates a K3s cluster end to end, GitOps style, with agents on a ZeroMQ bus.",
        discussion: HelpExamples.discussion(
            """
            Demo mode (the default) runs the whole workflow against a simulated cluster and writes real \
            artifacts: Terraform files, manifests, a git repository, Argo CD Applications.

            Settings come from flags, then the environment ($SHOAL_COORDINATOR, $SHOAL_KEY, \
            $SHOAL_COORDINATOR_KEY, $SHOAL_DIR), then the current context of ~/.config/shoal/config.yaml (another \
            file with --config FILE, on any command, or $SHOAL_CONFIG): see `shoal context --help`. -o is the \
            output format (table, wide, json, yaml, name) and -d the output directory.
            """, HelpExamples.shoal),
        version: WireFormat.softwareVersion,
        subcommands: [
            CreateCommand.self, StatusCommand.self, ListCommand.self, ValidateCommand.self, DestroyCommand.self,
            LogsCommand.self, GetCommand.self, KubeconfigCommand.self, CredentialsCommand.self, WatchCommand.self,
            WaitCommand.self, CancelCommand.self, ResumeCommand.self, AgentsCommand.self, StatsCommand.self,
            CoordinatorCommand.self, AgentCommand.self, KeysCommand.self, GitOpsCommand.self, AppCommand.self,
            HealthCommand.self, ContextCommand.self, VersionCommand.self, ReportCommand.self, CompletionCommand.self,
            BenchCommand.self, AgentWorkerCommand.self,
        ]
    )

    /// Parses as ArgumentParser does, but first answers a mistyped
    /// subcommand with the closest one (`shoal crate` -> `create`).
    static func main() async {
        // `--config FILE` goes with any command, like $SHOAL_CONFIG: taken off before ArgumentParser sees the line.
        let arguments = ShoalConfig.takeConfigFlag(Array(CommandLine.arguments.dropFirst()))
        if let message = SubcommandSuggestion.message(for: arguments) {
            FileDescriptorIO.printError("error: \(message)\n")
            Foundation.exit(ExitCode.validationFailure.rawValue)
        }
        OutputFormat.refuseDirectoryValue(in: arguments)
        do {
            var command = try parseAsRoot(arguments)
            if var command = command as? AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version", abstract: "Print shoal's version.", discussion: HelpExamples.version)

    func run() {
        let zmq = ZeroMQVersion.current
        print("shoal \(WireFormat.softwareVersion) (protocol v\(WireFormat.version), libzmq \(zmq))")
    }
}

/// Logging options shared by every command.
struct LoggingOptions: ParsableArguments {
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }

    /// Logs go to standard error, so standard output stays for results.
    func bootstrap(label: String) -> Logger {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: label)
    }
}

/// Prints a one-line error and exits with `code`, without a stack trace.
func fail(_ message: String, code: Int32 = 1) -> Never {
    FileDescriptorIO.printError("error: \(message)\n")
    exit(code)
}
