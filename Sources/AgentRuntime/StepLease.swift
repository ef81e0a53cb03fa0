import FoundationEssentials
import Protocol
import ShoalCore

/// The agent's right to run one attempt of a step. It lasts as long as the coordinator is heard from within the
/// liveness window (the same window after which the coordinator gives the step to another agent) and, once lost,
/// is never regained: a process frozen past the window (SIGSTOP, a paused VM) finds its leases expired when it
/// wakes, before it can do a step's work a second time.
public final class StepLease: @unchecked Sendable {  // `expiry` and `lost` are guarded by `lock`, `task` by `taskLock`
    private let lock = Lock()
    private var expiry: ContinuousClock.Instant
    private var lost = false
    /// The task running the step while `cancellingOnLoss` runs it; cancelled when the lease is lost. A lock of its
    /// own: cancelling runs the task's cancellation handlers, which may ask `isHeld`.
    private let taskLock = Lock()
    private var task: UnsafeCurrentTask?

    /// A lease valid for `window` from now.
    public init(window: Duration) {
        expiry = .now + window
    }

    /// A lease that never expires, for handlers run outside an agent (tests, tools).
    public static func unbounded() -> StepLease { StepLease(window: .seconds(100 * 365 * 86_400)) }

    /// Whether the step may still do work.
    public var isHeld: Bool {
        lock.withLock { !lost && ContinuousClock.now < expiry }
    }

    /// How long the lease is still good for; nil once it is lost.
    var remaining: Duration? {
        lock.withLock {
            let left = expiry - ContinuousClock.now
            return !lost && left > .zero ? left : nil
        }
    }

    /// Extends a lease that is still held; an expired one stays lost.
    func renew(window: Duration) {
        let lapsed = lock.withLock {
            let now = ContinuousClock.now
            if lost || now >= expiry { return loseLocked() }
            expiry = now + window
            return false
        }
        if lapsed { cancelTask() }
    }

    /// Ends the lease at once (the step was abandoned or the agent shuts down).
    func revoke() {
        if lock.withLock({ loseLocked() }) { cancelTask() }
    }

    /// Marks an expired lease lost (what `isHeld` already says), cancelling its step.
    func endIfLapsed() {
        if lock.withLock({ !lost && ContinuousClock.now >= expiry ? loseLocked() : false }) { cancelTask() }
    }

    /// Runs `body` in the calling task, which is cancelled once the lease is lost (revoked, or found expired by
    /// `renew` or `endIfLapsed`), at once when it is lost already. No task or timer watches the lease meanwhile.
    func cancellingOnLoss<T>(_ body: () async -> T) async -> T {
        withUnsafeCurrentTask { current in taskLock.withLock { task = current } }
        // Lost before the task was known: nobody else will cancel it.
        if !isHeld { cancelTask() }
        defer { taskLock.withLock { task = nil } }
        return await body()
    }

    /// Cancels the task running the step, if one is; under `taskLock`, so the task cannot end meanwhile.
    private func cancelTask() {
        taskLock.withLock { task?.cancel() }
    }

    /// Under `lock`: the lease is lost; returns whether it was held until now.
    private func loseLocked() -> Bool {
        defer { lost = true }
        return !lost
    }
}

/// The error a handler throws (through `StepContext.checkLease()`) once its lease is gone; the agent then
/// abandons the step without a result: another agent has, or will have, its next attempt.
public struct LeaseLost: Error, CustomStringConvertible, Sendable {
    public var key: StepKey
    public var description: String { "lease on \(key) lost; the step was given to another agent" }
}

/// The leases of the steps an agent runs, renewed whenever the coordinator is heard from.
final class LeaseBook: @unchecked Sendable {  // `leases` is guarded by `lock`
    private let lock = Lock()
    private var leases: [StepKey: StepLease] = [:]

    func grant(_ key: StepKey, window: Duration) -> StepLease {
        let lease = StepLease(window: window)
        lock.withLock { leases[key] = lease }
        return lease
    }

    func lease(_ key: StepKey) -> StepLease? { lock.withLock { leases[key] } }

    func renewAll(window: Duration) {
        for lease in lock.withLock({ Array(leases.values) }) { lease.renew(window: window) }
    }

    func revokeAll() {
        for lease in lock.withLock({ Array(leases.values) }) { lease.revoke() }
    }

    /// Ends the leases that ran out (nothing heard from the coordinator within their window).
    func endLapsed() {
        for lease in lock.withLock({ Array(leases.values) }) { lease.endIfLapsed() }
    }

    func remove(_ key: StepKey) {
        _ = lock.withLock { leases.removeValue(forKey: key) }
    }
}
