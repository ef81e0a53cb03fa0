import Foundation
import ShoalSupport
import Testing

@testable import Coordinator
@testable import Protocol
@testable import ZeroMQ

@Suite(.serialized) struct SecurityTests {
    let context = Context()

    private func submit(_ coordinator: TestCoordinator) throws -> String {
        try coordinator.client(context).submit(WorkflowRequest()).workflow
    }

    @Test func anAgentWithAnUnlistedKeyNeverReceivesAStepAndTheRefusalIsLogged() async throws {
        let coordinator = try await TestCoordinator.start { $0.ackTimeout = .seconds(30) }
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let stranger = try CurveKeyPair.generate()
            let intruder = try RawAgent(
                id: "planner-intruder", role: .planner, coordinator: coordinator, context: context, keys: stranger)
            try intruder.send(
                Header(type: .hello, sender: intruder.id),
                Hello(agent: intruder.id, role: .planner, host: "test", pid: 1, capacity: 1, version: "test"))
            let refusal = coordinator.logs.waitBlocking {
                $0.message == "connection refused" && $0.metadata["key"] == stranger.publicKey
            }
            #expect(refusal?.metadata["reason"] == "unknown-key")
            // It subscribes to its own topic as well; the workflow needs a planner.
            try intruder.subscriber.subscribe(WireFormat.agentTopic(intruder.id))
            let workflow = try submit(coordinator)
            #expect(try intruder.waitStep(timeout: .milliseconds(500)) == nil)
            #expect(intruder.controlInbox.isEmpty, "no welcome, no answer at all")
            #expect(try coordinator.client(context).agents().isEmpty)
            #expect(try coordinator.client(context).status(workflow).steps.first?.state == .pending)
        }
    }

    @Test func aPlainTCPPeerGetsNothingBack() async throws {
        let coordinator = try await TestCoordinator.start()
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let dealer = try Socket(context: context, type: .dealer)
            try dealer.connect(coordinator.endpoints.control)
            _ = try dealer.send(Codec.encode(Header(type: .list), Empty()), wait: false)
            try dealer.set(.receiveTimeout, 500)
            #expect(try dealer.receive() == nil)
            // A client without keys says why it gets nothing.
            let client = try CoordinatorClient(endpoint: coordinator.endpoints.control, curve: nil, context: context)
            // A deadline, not a wait: the handshake's failure ends the call as soon as the monitor reports it.
            client.replyTimeout = .seconds(10)
            let error = #expect(throws: ShoalError.self) { try client.list() }
            #expect(error?.code == .forbidden)
            #expect(error?.message.contains("requires CURVE") == true, "\(error?.message ?? "")")
        }
    }

    @Test func aClientWithAnUnlistedKeyIsToldItsKeyWasRefused() async throws {
        let coordinator = try await TestCoordinator.start()
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let client = try CoordinatorClient(
                endpoint: coordinator.endpoints.control, curve: coordinator.curve(try CurveKeyPair.generate()),
                context: context)
            let error = #expect(throws: ShoalError.self) { try client.list() }
            #expect(error?.code == .forbidden)
            #expect(error?.message.contains("refused this client's key") == true)
        }
    }

    @Test func aClientWithTheWrongCoordinatorKeyIsToldSo() async throws {
        let coordinator = try await TestCoordinator.start()
        defer { Task { await coordinator.stop() } }
        let impostor = try CurveKeyPair.generate()
        let wrong = CurveClientKeys(serverPublicKey: impostor.publicKey, keyPair: coordinator.peerKeys)
        let client = try CoordinatorClient(endpoint: coordinator.endpoints.control, curve: wrong, context: context)
        client.replyTimeout = .milliseconds(300)
        client.attempts = 3
        let error = #expect(throws: ShoalError.self) { try client.list() }
        #expect(error?.code == .forbidden)
        #expect(error?.message.contains("is --coordinator-key that coordinator's public key?") == true)
    }

    @Test func aClientWithTheWrongCoordinatorKeyLearnsItBeforeItsAttemptsRunOut() async throws {
        let coordinator = try await TestCoordinator.start()
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let impostor = try CurveKeyPair.generate()
            let wrong = CurveClientKeys(serverPublicKey: impostor.publicKey, keyPair: coordinator.peerKeys)
            let client = try CoordinatorClient(endpoint: coordinator.endpoints.control, curve: wrong, context: context)
            // Defaults would wait 5 x 2 s for replies; the broken handshakes end it after the 3 s grace.
            let started = ContinuousClock.now
            let error = #expect(throws: ShoalError.self) { try client.list() }
            #expect(error?.code == .forbidden)
            #expect(ContinuousClock.now - started < .seconds(8), "took \(ContinuousClock.now - started)")
        }
    }

    @Test func aRevokedAgentIsCutOffAndItsStepGoesToAnother() async throws {
        let doomedKeys = try CurveKeyPair.generate()
        let coordinator = try await TestCoordinator.start(allowing: ["planner-doomed": doomedKeys]) {
            $0.ackTimeout = .seconds(30)
            $0.heartbeatInterval = .seconds(5)
        }
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let doomed = try RawAgent(
                id: "planner-doomed", role: .planner, coordinator: coordinator, context: context, keys: doomedKeys)
            try doomed.join()
            let workflow = try submit(coordinator)
            let step = try #require(try doomed.waitStep())
            try doomed.ack(step.key)
            let survivor = try RawAgent(
                id: "planner-survivor", role: .planner, coordinator: coordinator, context: context)
            try survivor.join()

            #expect(unlink(coordinator.allowDirectory + "/planner-doomed.pub") == 0)
            // The step moves on as the next attempt, with no ack timeout or
            // missed heartbeat involved: the revocation alone did it.
            let moved = try #require(try survivor.waitStep(timeout: .seconds(5)))
            #expect(moved.key == StepKey(workflow: workflow, step: "plan", attempt: 2))
            let lost = coordinator.logs.waitBlocking {
                $0.message == "agent lost" && $0.metadata["agent.id"] == doomed.id
            }
            #expect(lost?.metadata["reason"] == "key revoked")
            #expect(try coordinator.client(context).agents().map(\.id) == ["planner-survivor"])

            // Whatever it sends now is refused: its connection was reset and the
            // new handshake fails, so its result never lands.
            try doomed.result(step.key, values: ["plan": emptyPlan])
            #expect(try doomed.waitControl(.confirm, timeout: .milliseconds(500)) == nil)
            try survivor.ack(moved.key)
            try survivor.result(moved.key, values: ["plan": emptyPlan])
            #expect(try survivor.waitControl(.confirm)?.header.stepKey == moved.key)
            let status = try coordinator.client(context).status(workflow)
            #expect(status.state == .succeeded)
            #expect(status.steps.first?.agent == "planner-survivor")
            let refused = coordinator.logs.waitBlocking {
                $0.message == "connection refused" && $0.metadata["key"] == doomedKeys.publicKey
            }
            #expect(refused != nil, "the revoked agent's new handshake was refused")
        }
    }

    @Test func anAllowedPeerCannotSpeakForAnotherAgent() async throws {
        let ownerKeys = try CurveKeyPair.generate()
        let coordinator = try await TestCoordinator.start(allowing: ["planner-owner": ownerKeys]) {
            $0.ackTimeout = .seconds(30)
        }
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let owner = try RawAgent(
                id: "planner-owner", role: .planner, coordinator: coordinator, context: context, keys: ownerKeys)
            try owner.join()
            let workflow = try submit(coordinator)
            let step = try #require(try owner.waitStep())
            // Another allowed peer (the shared test key) claims to be the owner.
            let impostor = try RawAgent(id: "planner-owner", role: .planner, coordinator: coordinator, context: context)
            impostor.heartbeats = false
            try impostor.result(step.key, values: ["plan": emptyPlan])
            let error = try #require(try impostor.waitControl(.error))
            #expect(try error.decode(ErrorReply.self).reason == RejectReason.keyMismatch.rawValue)
            try impostor.send(
                Header(type: .hello, sender: impostor.id),
                Hello(agent: impostor.id, role: .planner, host: "elsewhere", pid: 2, capacity: 1, version: "test"))
            let refusedHello = try #require(try impostor.waitControl(.error))
            #expect(try refusedHello.decode(ErrorReply.self).reason == RejectReason.keyMismatch.rawValue)
            #expect(try coordinator.client(context).status(workflow).state == .running)
            #expect(try coordinator.client(context).agents().first?.host == "test", "the owner's registration stands")
        }
    }

    @Test func aKeyAllowedWhileRunningIsAcceptedWithoutRestart() async throws {
        let coordinator = try await TestCoordinator.start()
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let newcomer = try CurveKeyPair.generate()
            try KeyFile.writePublic(
                .init(name: "docs-new", publicKey: newcomer.publicKey), to: coordinator.allowDirectory + "/docs-new.pub"
            )
            // A refused handshake is final for a connection, so each try is a fresh agent.
            var welcomed = false
            let deadline = ContinuousClock.now + .seconds(5)
            while !welcomed && ContinuousClock.now < deadline {
                let agent = try RawAgent(
                    id: "docs-new", role: .docs, coordinator: coordinator, context: context, keys: newcomer)
                try agent.send(
                    Header(type: .hello, sender: agent.id),
                    Hello(agent: agent.id, role: .docs, host: "test", pid: 1, capacity: 1, version: "test"))
                welcomed = try agent.waitControl(.welcome, timeout: .milliseconds(200)) != nil
            }
            #expect(welcomed)
            let allowed = coordinator.logs.waitBlocking { $0.message == "key allowed" }
            #expect(allowed?.metadata["key.name"] == "docs-new")
        }
    }

    @Test func withoutSecurityTheBusIsPlainTCPAndSaysSo() async throws {
        let coordinator = try await TestCoordinator.start(secure: false)
        defer { Task { await coordinator.stop() } }
        try await onOwnThread {
            let dealer = try Socket(context: context, type: .dealer)
            try dealer.connect(coordinator.endpoints.control)
            _ = try dealer.send(Codec.encode(Header(type: .list), Empty()), wait: false)
            try dealer.set(.receiveTimeout, 5000)
            #expect(try dealer.receive() != nil)
            #expect(coordinator.logs.all.contains { $0.message.hasPrefix("bus security off") })
        }
    }
}
