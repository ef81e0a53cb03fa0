import Foundation
import ShoalSupport
import Testing

@Suite struct SecureFileTests {
    private func scratch() throws -> String {
        let path = NSTemporaryDirectory() + "shoal-support-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try SecureFile.createDirectory(path)
        return path
    }

    @Test func aSecretIsBornPrivateInAPrivateDirectory() throws {
        let root = try scratch()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try SecureFile.write("token", to: "\(root)/kubeconfigs/wf-1/kubeconfig", mode: 0o600)
        #expect(SecureFile.mode(of: "\(root)/kubeconfigs/wf-1/kubeconfig") == 0o600)
        #expect(SecureFile.mode(of: "\(root)/kubeconfigs/wf-1") == 0o700)
        try SecureFile.write("public", to: "\(root)/docs/wf-1/README.md")
        #expect(SecureFile.mode(of: "\(root)/docs/wf-1/README.md") == 0o644)
        #expect(SecureFile.mode(of: "\(root)/docs/wf-1") == 0o755)
        #expect(try String(contentsOfFile: "\(root)/kubeconfigs/wf-1/kubeconfig", encoding: .utf8) == "token")
    }
}

@Suite struct OwnerLockTests {
    @Test func aSecondOwnerIsToldWhoHoldsTheLock() throws {
        let path = NSTemporaryDirectory() + "shoal-lock-\(getpid())-\(UInt32.random(in: 0...UInt32.max))/journal.lock"
        defer { unlink(path) }
        let first = try OwnerLock.acquire(path, subject: "the journal j.sqlite")
        // flock locks belong to open files, so a second open in this process conflicts as another process would.
        #expect {
            try OwnerLock.acquire(path, subject: "the journal j.sqlite")
        } throws: { error in
            guard let error = error as? ShoalError, error.code == .alreadyRunning else { return false }
            return error.message.hasPrefix("the journal j.sqlite is in use by another shoal (pid \(getpid()) on host ")
                && error.message.contains(" since 20")
        }
        withExtendedLifetime(first) {}
    }

    @Test func theLockIsFreedWithItsOwner() throws {
        let path = NSTemporaryDirectory() + "shoal-lock-\(getpid())-\(UInt32.random(in: 0...UInt32.max))/out.lock"
        defer { unlink(path) }
        var first: OwnerLock? = try OwnerLock.acquire(path, subject: "the output directory out")
        #expect(first != nil)
        first = nil
        // A child that another test spawns at this moment holds a copy of the descriptor until its exec closes it
        // (the lock's open file stays locked meanwhile): retried for a moment, not taken for a lock kept.
        let second = try acquireSoon(path, subject: "the output directory out")
        #expect(second.path == path)
    }

    @Test func theLockIsFreedWhenTheOwnerProcessIsKilled() async throws {
        let path = NSTemporaryDirectory() + "shoal-lock-\(getpid())-\(UInt32.random(in: 0...UInt32.max))/out.lock"
        defer { unlink(path) }
        try SecureFile.createDirectory((path as NSString).deletingLastPathComponent)
        // flock(1) holds the lock in another process, as a running shoal would.
        guard ProcessRunner.locate("flock") != nil else {
            Issue.record("flock(1) (util-linux) is not installed")
            return
        }
        let holder = Task { try await ProcessRunner().run("flock", ["-x", path, "sleep", "30"], timeout: .seconds(60)) }
        let deadline = ContinuousClock.now + .seconds(10)
        var refused = false
        while !refused && ContinuousClock.now < deadline {
            do {
                _ = try OwnerLock.acquire(path, subject: "x")
                try await Task.sleep(for: .milliseconds(20))
            } catch {
                refused = true
            }
        }
        #expect(refused)
        holder.cancel()
        _ = try await holder.value
        // flock's `sleep` holds the lock too (it inherits the descriptor) until the kill of their group reaches it.
        #expect(throws: Never.self) { _ = try acquireSoon(path, subject: "x") }
    }

    /// The lock, retried for up to 5 s while another process still holds it.
    private func acquireSoon(_ path: String, subject: String) throws -> OwnerLock {
        let deadline = ContinuousClock.now + .seconds(5)
        while true {
            do {
                return try OwnerLock.acquire(path, subject: subject)
            } catch {
                guard ContinuousClock.now < deadline else { throw error }
                usleep(10_000)
            }
        }
    }
}
