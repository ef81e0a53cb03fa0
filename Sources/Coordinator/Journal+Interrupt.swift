import Protocol

extension Journal {
    /// Marks every workflow still `running` in the journal `interrupted`, in one transaction: the process that
    /// drove it has stopped, and nothing is to run it again until a client resumes it. Steps given out
    /// (`assigned`, `running`) become `cancelled` and their open attempts end as `interrupted`; steps that
    /// succeeded keep their results, so `resume` never runs them again.
    /// Only for whoever owns the journal (its coordinator, at start, or the embedded `create` once its
    /// coordinator has stopped).
    /// - Returns: the ids of the workflows marked, oldest first.
    public func interruptUnfinished(at now: Int64) throws -> [String] {
        let unfinished = try workflows(unfinishedOnly: true).sorted { $0.createdAt < $1.createdAt }
        guard !unfinished.isEmpty else { return [] }
        var batch = JournalBatch()
        for var workflow in unfinished {
            for (position, step) in workflow.steps.enumerated()
            where step.state == .assigned || step.state == .running {
                batch.attemptEnded(
                    StepKey(workflow: workflow.id, step: step.name, attempt: step.attempt), outcome: "interrupted",
                    at: now, ackedAt: step.state == .running ? step.startedAt : nil)
                workflow.steps[position].state = .cancelled
                workflow.steps[position].finishedAt = now
                workflow.steps[position].error = "interrupted"
                batch.save(workflow.steps[position], workflow: workflow.id, position: position)
            }
            workflow.state = .interrupted
            workflow.error = "interrupted before it ended; `shoal resume` runs it on"
            workflow.revision += 1
            batch.saveHeader(of: workflow)
        }
        try commit(batch)
        return unfinished.map(\.id)
    }
}
