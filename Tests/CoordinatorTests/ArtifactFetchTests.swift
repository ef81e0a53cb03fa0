import Foundation
import Testing

@testable import Coordinator
@testable import Protocol
@testable import ZeroMQ

/// Steps name their ancestors' artifacts by digest; agents fetch the bytes from the coordinator in chunks.
@Suite(.serialized) struct ArtifactFetchTests {
    let context = Context()

    private func plan(_ steps: [PlannedStep]) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(Plan(steps: steps)))
    }

    private func finish(
        _ agent: RawAgent, _ key: StepKey, values: [String: JSONValue] = [:], artifacts: [Artifact] = []
    ) throws {
        try agent.ack(key)
        let result = StepResult(
            outcome: .succeeded, output: StepOutput(summary: "done", values: values, artifacts: artifacts),
            error: nil, agent: agent.id, host: "test", pid: 1, startedAt: 0, finishedAt: 0)
        try agent.send(
            Header(type: .result, workflow: key.workflow, step: key.step, attempt: key.attempt, sender: agent.id),
            result)
        _ = try #require(try agent.waitControl(.confirm))
    }

    /// Sends a `fetch` and returns the reply (a `fetch-reply` or an `error`).
    private func fetch(_ agent: RawAgent, _ digest: String, offset: Int) throws -> Envelope {
        let header = Header(type: .fetch, sender: agent.id)
        try agent.send(header, FetchRequest(digest: digest, offset: offset))
        return try #require(
            try agent.pump { _, control in
                guard let control, control.header.re == header.id else { return nil }
                return control
            })
    }

    @Test func aStepGetsItsAncestorsLargeArtifactByDigestInChunksAndBadFetchesAreRefused() async throws {
        let coordinator = try await TestCoordinator.start {
            $0.ackTimeout = .seconds(10)
            $0.liveness = 50
        }
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let planner = try RawAgent(id: "planner-f", role: .planner, coordinator: coordinator, context: context)
            let maker = try RawAgent(id: "infra-f", role: .infra, coordinator: coordinator, context: context)
            let user = try RawAgent(id: "docs-f", role: .docs, coordinator: coordinator, context: context)
            for agent in [planner, maker, user] { try agent.join() }
            let client = try coordinator.client(context)

            let workflow = try client.submit(WorkflowRequest()).workflow
            let first = try #require(try planner.waitStep())
            try finish(
                planner, first.key,
                values: [
                    "plan": try plan([
                        PlannedStep(name: "provision", role: .infra, critical: true),
                        PlannedStep(name: "docs", role: .docs, needs: ["provision"]),
                    ])
                ])
            let make = try #require(try maker.waitStep())
            #expect(make.assignment.artifacts.isEmpty)
            // 3 MiB that no run-length trick compresses: a byte pattern with a long period.
            let big = Data((0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) })
            let secret = Data("join-token-0123456789\n".utf8)
            try finish(
                maker, make.key,
                artifacts: [
                    Artifact(name: "cluster-state", path: nil, data: big),
                    Artifact(name: "k3s-token", path: nil, sensitive: true, data: secret),
                ])

            let use = try #require(try user.waitStep())
            #expect(use.key.workflow == workflow)
            let refs = Dictionary(uniqueKeysWithValues: use.assignment.artifacts.map { ($0.name, $0) })
            let state = try #require(refs["cluster-state"])
            #expect(state.size == big.count)
            #expect(state.digest == Journal.digest(big))
            #expect(try #require(refs["k3s-token"]).sensitive)

            // The assignment carries references, not bytes: it is small.
            let encoded = try JSONEncoder().encode(use.assignment)
            #expect(encoded.count < 4096, "an assignment of \(encoded.count) bytes carries more than references")

            let before = try client.stats().fetchedChunks ?? 0
            var received = Data()
            var chunks = 0
            while received.count < state.size {
                let reply = try fetch(user, state.digest, offset: received.count)
                #expect(reply.header.type == .fetchReply)
                let chunk = try reply.decode(FetchReply.self)
                #expect(chunk.total == big.count)
                #expect(chunk.offset == received.count)
                #expect(chunk.data.count <= WireFormat.fetchChunkBytes)
                #expect(!chunk.data.isEmpty)
                received.append(chunk.data)
                chunks += 1
            }
            #expect(chunks == 12, "3 MiB in chunks of 256 KiB")
            #expect(Journal.digest(received) == state.digest)
            #expect(try client.stats().fetchedChunks == before + 12)

            let token = try fetch(user, try #require(refs["k3s-token"]).digest, offset: 0)
            #expect(try token.decode(FetchReply.self).data == secret, "a sensitive artifact comes out of its seal")

            let unknown = try fetch(user, String(repeating: "0", count: 64), offset: 0)
            #expect(unknown.header.type == .error)
            #expect(try unknown.decode(ErrorReply.self).reason == RejectReason.unknownArtifact.rawValue)
            for offset in [-1, big.count, big.count + 5] {
                let bad = try fetch(user, state.digest, offset: offset)
                #expect(try bad.decode(ErrorReply.self).reason == RejectReason.invalidOffset.rawValue)
            }
            let malformed = try fetch(user, "../../etc/passwd", offset: 0)
            #expect(try malformed.decode(ErrorReply.self).reason == RejectReason.invalidField.rawValue)
            #expect(try client.stats().rejected[RejectReason.unknownArtifact.rawValue] == 1)
        }
    }

    @Test func theJournalFindsAnArtifactByDigestAndNamesItWithoutItsBytes() throws {
        let directory = NSTemporaryDirectory() + "shoal-digest-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/journal.sqlite"
        let journal = try Journal(path: path)
        var batch = JournalBatch()
        let key = StepKey(workflow: "w-1", step: "provision", attempt: 1)
        let data = Data("state".utf8)
        batch.result(
            key,
            StepResult(
                outcome: .succeeded,
                output: StepOutput(summary: "s", artifacts: [Artifact(name: "cluster-state", path: nil, data: data)]),
                error: nil, agent: "a", host: "h", pid: 1, startedAt: 0, finishedAt: 0), at: 0)
        try journal.commit(batch)
        #expect(try journal.artifactData(digest: Journal.digest(data)) == data)
        #expect(try journal.artifactRefs(workflow: "w-1", steps: ["provision"]).first?.ref.size == data.count)
    }

    @Test func rowsWrittenBeforeDigestsGetThemWhenTheJournalOpens() throws {
        guard let sqlite = SQLiteShell() else { return }
        let directory = NSTemporaryDirectory() + "shoal-digest-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/journal.sqlite"
        let plain = Data("state".utf8)
        let secret = Data("token\n".utf8)
        do {
            let journal = try Journal(path: path)
            var batch = JournalBatch()
            batch.result(
                StepKey(workflow: "w-1", step: "provision", attempt: 1),
                StepResult(
                    outcome: .succeeded,
                    output: StepOutput(
                        summary: "s",
                        artifacts: [
                            Artifact(name: "cluster-state", path: nil, data: plain),
                            Artifact(name: "k3s-token", path: nil, sensitive: true, data: secret),
                        ]),
                    error: nil, agent: "a", host: "h", pid: 1, startedAt: 0, finishedAt: 0), at: 0)
            try journal.commit(batch)
        }
        // As a journal written before digests were kept has them.
        try sqlite.run(path, "UPDATE artifacts SET digest = NULL, size = NULL")
        let reopened = try Journal(path: path)
        #expect(try reopened.artifactData(digest: Journal.digest(plain)) == plain)
        #expect(try reopened.artifactData(digest: Journal.digest(secret)) == secret, "the sealed row is opened first")
        let refs = try reopened.artifactRefs(workflow: "w-1", steps: ["provision"]).map(\.ref)
        #expect(refs.map(\.size) == [plain.count, secret.count])
    }
}
