import ArgumentParser
import Foundation
import Protocol
import ShoalSupport

/// `shoal report WORKFLOW`: the run as an HTML page.
struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write a workflow's report: an HTML page with its steps, a timeline and the health checks.",
        discussion: HelpExamples.discussion(
            """
            The page goes to OUTPUT/reports/WORKFLOW/index.html. It is one self-contained file (inline SVG and CSS, \
            nothing fetched): the DAG of steps coloured by state, a timeline of the steps by agent and host, and \
            the health checks with their weights and remedies. `shoal create` writes it at the end of every run.
            """, HelpExamples.report))

    @Argument(help: "The workflow id.", completion: .workflowIDs) var workflow: String
    @OptionGroup var source: SourceOptions

    func validate() throws { try checkWorkflowID(workflow) }

    func run() async throws {
        do {
            let snapshot = try await source.workflow(workflow)
            print(try RunReport.write(snapshot, output: source.output))
        } catch let error as ShoalError {
            fail(error.description)
        }
    }
}
