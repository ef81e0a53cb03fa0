import ArgumentParser
import Coordinator
import Foundation
import Protocol
import ShoalSupport

struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "Print the log of a workflow's steps (terraform, kubectl and git output included).",
        discussion: """
            Each step's log is kept in the journal with its result (at most 256 KiB per step, the oldest lines \\
            dropped first) and printed under a header line naming the step, its attempt, agent and host. With \\
            --coordinator it is read from that coordinator (from any host), else from the journal of an embedded \\
            run in -d DIR. A step's log arrives when the step ends; -f prints each step's log as it does, until \\
            the workflow ends.

            Examples:
              shoal logs k3s-dev-1a2b3c provision --coordinator tcp://10.0.0.5:7401
              shoal logs k3s-dev-1a2b3c -f -d output
              shoal logs k3s-dev-1a2b3c provision -o json
            """)

    @Argument(help: "The workflow id.") var workflow: String
    @Argument(help: "Only this step's log, e.g. provision or validate/nodes.") var step: String?
    @Flag(name: [.short, .long], help: "Follow a running workflow: print each step's log as the step ends.")
    var follow = false
    @OptionGroup var source: SourceOptions
    @OptionGroup var format: OutputFormatOption

    func validate() throws {
        try checkWorkflowID(workflow)
        if follow && format.format != .table && format.format != .wide {
            throw ValidationError("-f prints logs as steps end; -o \(format.format.rawValue) goes without it")
        }
        if let step, step.isEmpty || step.utf8.count > 100 || step.contains(where: { $0.isNewline }) {
            throw ValidationError("a step name is 1-100 characters on one line, e.g. provision")
        }
    }

    func run() async throws {
        if format.format != .table && format.format != .wide {
            let reply: LogsReply
            do {
                reply = try await fetch()
            } catch let error as ShoalError {
                fail(error.description)
            }
            if format.format == .name {
                for log in reply.steps { Swift.print(log.step) }
            } else {
                _ = format.printDocument(OutputDocuments.StepLogs(reply))
            }
            return
        }
        var printed: Set<String> = []
        var shown = false
        do {
            while true {
                let reply = try await fetch()
                for log in reply.steps where printed.insert("\(log.step)#\(log.attempt)").inserted {
                    Self.print(log)
                    shown = true
                }
                fflush(nil)
                if !follow || reply.state.isFinished { break }
                try await Task.sleep(for: .seconds(1))
            }
        } catch let error as ShoalError {
            fail(error.description)
        }
        if !shown {
            FileDescriptorIO.printError(
                step.map { "step \($0) of \(workflow) has no log yet (it has not ended)\n" }
                    ?? "workflow \(workflow) has no step log yet\n")
        }
    }

    private func fetch() async throws -> LogsReply {
        let workflow = workflow
        let step = step
        if let coordinator = source.endpoint {
            return try await source.withClient(coordinator) { try $0.logs(workflow, step: step) }
        }
        let (journal, snapshot) = try source.local(workflow)
        if let step, snapshot.step(step) == nil {
            throw ShoalError(.notFound, "workflow \(workflow) has no step '\(Names.printable(step))'")
        }
        return LogsReply(
            workflow: workflow, state: snapshot.state, steps: try journal.stepLogs(of: snapshot, step: step))
    }

    static func print(_ log: StepLog) {
        Swift.print(format(log), terminator: "")
    }

    /// A step's log under its header line, each line ending with a newline.
    static func format(_ log: StepLog) -> String {
        var header = "==> \(log.step) (attempt \(log.attempt), \(log.agent) on \(log.host), \(log.outcome.rawValue))"
        if log.dropped > 0 { header += " [\(log.dropped) earlier line(s) dropped]" }
        var text = header + "\n"
        for line in log.lines { text += line + "\n" }
        if let error = log.error { text += "error: \(error)\n" }
        return text
    }
}
