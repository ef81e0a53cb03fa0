import Coordinator
import Foundation
import Protocol
import ShoalSupport

/// Shows a workflow as it runs, then a summary: the live table on a terminal, else a line per step as it starts
/// and ends (what scripts read), or nothing; with `-v` each step's log as it ends, with `-q` only the workflow id
/// and the result.
final class ProgressDisplay: @unchecked Sendable {  // `printed` and `logged` are guarded by `lock`
    let style: ProgressStyle
    private let live: LiveView?
    private let lock = NSLock()
    private var printed: [String: StepSnapshot.State] = [:]
    /// The last attempt of each step whose log `-v` printed.
    private var logged: [String: Int] = [:]

    init(style: ProgressStyle = .plain) {
        self.style = style
        live = style.display == .live ? LiveView(style: .init(color: style.color, unicode: style.unicode)) : nil
    }

    /// The workflow id: `workflow ID submitted`, or the bare id with `-q`; the live table starts below it.
    func submitted(_ workflow: String) {
        print(style.quiet ? workflow : "workflow \(workflow) submitted")
        fflush(nil)
        live?.start()
    }

    /// Starts showing a workflow that was submitted elsewhere (`watch`).
    func following() {
        live?.start()
    }

    func update(_ workflow: WorkflowSnapshot) {
        switch style.display {
        case .live: live?.update(workflow)
        case .plain: printLines(workflow)
        case .none: break
        }
    }

    /// Ends the live table (its last frame stays on screen); the summary follows it.
    func finish() {
        live?.stop()
    }

    /// With `-v`: the steps that ended since the last call, whose logs are to be printed.
    func stepsToLog(_ workflow: WorkflowSnapshot) -> [String] {
        guard style.verbose else { return [] }
        return lock.withLock {
            var names: [String] = []
            for step in workflow.steps where [.succeeded, .failed].contains(step.state) {
                if (logged[step.name] ?? 0) < step.attempt {
                    logged[step.name] = step.attempt
                    names.append(step.name)
                }
            }
            return names
        }
    }

    /// Prints step logs (`-v`), above the live table when there is one.
    func printLogs(_ logs: [StepLog]) {
        guard !logs.isEmpty else { return }
        let text = logs.map(LogsCommand.format).joined()
        if let live {
            live.printAbove(text)
        } else {
            lock.withLock {
                print(text, terminator: "")
                fflush(nil)
            }
        }
    }

    /// Follows a workflow through a coordinator until it ends, with `-v` fetching each step's log as it ends.
    /// - Parameter onSnapshot: called with every snapshot too (the embedded cluster starts its agents by it).
    func follow(
        _ client: CoordinatorClient, workflow: String, eventsPort: Int?, timeout: Duration? = nil,
        onSnapshot: (WorkflowSnapshot) -> Void = { _ in }
    ) throws -> WorkflowSnapshot {
        try client.follow(workflow, eventsPort: eventsPort, timeout: timeout) { snapshot in
            onSnapshot(snapshot)
            update(snapshot)
            for step in stepsToLog(snapshot) {
                if let reply = try? client.logs(workflow, step: step) { printLogs(reply.steps) }
            }
        }
    }

    private func printLines(_ workflow: WorkflowSnapshot) {
        lock.lock()
        defer { lock.unlock() }
        for step in workflow.steps {
            let previous = printed[step.name]
            if step.state == .running || step.state == .assigned, previous == nil {
                printed[step.name] = step.state
                print("  start \(pad(step.name, 22)) \(agentLabel(step))")
            }
            if step.state.isFinished, previous == nil || !(previous!.isFinished) {
                if previous == nil && step.state == .succeeded {
                    print("  start \(pad(step.name, 22)) \(agentLabel(step))")
                }
                printed[step.name] = step.state
                let label = ["succeeded": "ok   ", "failed": "FAIL ", "skipped": "skip ", "cancelled": "stop "][step.state.rawValue] ?? "     "
                var line = "  \(label) \(pad(step.name, 22))"
                if let started = step.startedAt, let finished = step.finishedAt {
                    line += " " + pad(Duration.milliseconds(max(0, finished - started)).shortDescription, 7)
                }
                if step.agent != nil && step.state != .skipped && step.state != .cancelled { line += " " + agentLabel(step) }
                if let summary = step.summary ?? step.error { line += "  " + summary }
                print(line)
            }
        }
        fflush(nil)
    }

    private func agentLabel(_ step: StepSnapshot) -> String {
        guard let agent = step.agent else { return "" }
        var details: [String] = []
        if let pid = step.pid { details.append("pid \(pid)") }
        if let host = step.host { details.append("host \(host)") }
        return details.isEmpty ? agent : "\(agent) (\(details.joined(separator: ", ")))"
    }

    func summary(_ workflow: WorkflowSnapshot, output: String?) {
        live?.update(workflow)
        finish()
        let total = workflow.steps.count
        let succeeded = workflow.steps.filter { $0.state == .succeeded }.count
        var elapsed = ""
        if let finished = workflow.finishedAt {
            elapsed = " in " + Duration.milliseconds(max(0, finished - workflow.createdAt)).shortDescription
        }
        if !style.quiet { print("") }
        print("Workflow \(workflow.id) \(workflow.state.rawValue)\(elapsed): \(total) steps, \(succeeded) succeeded")
        if let error = workflow.error { print("  reason: \(error)") }
        if style.quiet {
            fflush(nil)
            return
        }
        do {
            if let report = try workflow.output(HealthReportOutput.self) { printHealth(report) }
        } catch {
            print("")
            print("Health: \(error)")
        }
        if workflow.state == .succeeded || workflow.step(.provision)?.state == .succeeded {
            printAccess(workflow, output: output.map(absolutePath))
        }
        if let output { printFiles(workflow, output: absolutePath(output)) }
        fflush(nil)
    }

    private func printHealth(_ report: HealthReportOutput) {
        print("")
        print("Health: score \(report.score)/100 (\(report.status))")
        print("  \(pad("CHECK", 14)) \(pad("RESULT", 6)) \(pad("AGENT", 16)) DETAIL")
        for check in report.checks {
            print(
                "  \(pad(check.name, 14)) \(pad(check.passed ? "pass" : "FAIL", 6)) \(pad(check.agent, 16)) "
                    + check.message)
        }
    }

    private func printAccess(_ workflow: WorkflowSnapshot, output: String?) {
        // Where each secret is: its absolute path on this host, or the command that fetches it.
        func secret(_ file: String) -> String {
            output.map { "\($0)/kubeconfigs/\(workflow.id)/\(file)" }
                ?? "`shoal credentials \(workflow.id) --coordinator ...`"
        }
        let host = (try? workflow.output(ProvisionOutput.self))??.nodeAddress ?? "127.0.0.1"
        let simulated = !workflow.request.realDeployment
        print("")
        print("Access" + (simulated ? " (demo mode: where a real cluster serves them)" : ""))
        var rows: [(String, Int, String)] = []
        if workflow.request.argocd {
            rows.append(("Argo CD", 30080, "user admin; password in \(secret("argocd-admin-password"))"))
        }
        if workflow.request.monitoring {
            rows.append(("Prometheus", 30090, ""))
            rows.append(("Grafana", 30300, "user admin; password in \(secret("grafana-admin-password"))"))
            if workflow.request.headlamp {
                rows.append(("Headlamp", 30466, "token: `shoal credentials \(workflow.id) headlamp`"))
            }
        }
        for (name, port, note) in rows {
            print("  \(pad(name, 11)) \(pad("http://\(host):\(port)", 24)) \(note)")
        }
    }

    private func printFiles(_ workflow: WorkflowSnapshot, output: String) {
        print("")
        print("Files")
        let entries = [
            ("terraform", "terraform"), ("kubeconfig", "kubeconfigs"), ("manifests", "manifests"),
            ("gitops repo", "gitops"), ("argocd apps", "argocd-apps"), ("runbook", "docs"),
        ]
        for (label, directory) in entries {
            let path = "\(output)/\(directory)/\(workflow.id)"
            if FileManager.default.fileExists(atPath: path) { print("  \(pad(label, 12)) \(path)/") }
        }
        print("  \(pad("logs", 12)) \(output)/.shoal/logs/")
    }
}

func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}
