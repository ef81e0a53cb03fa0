import Foundation
import Protocol

/// The agent's right to run one attempt of a step. It lasts as long as the coordinator is heard from within the
/// liveness window (the same window after which the coordinator gives the step to another agent) and, once lost,
/// is never regained: a process frozen past the window (SIGSTOP, a paused VM) finds its leases expired when it
/// wakes, before it can do a step's work a second time.
public final class StepLease: @unchecked Sendable {  // `expiry` and `lost` are guarded by `lock`
    private let lock = NSLock()
    private var expiry: ContinuousClock.Instant
    private var lost = false

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

    /// Extends a lease that is still held; an expired one stays lost.
    func renew(window: Duration) {
        lock.withLock {
            let now = ContinuousClock.now
            if lost || now >= expiry {
                lost = true
            } else {
                expiry = now + window
            }
        }
    }

    /// Ends the lease at once (the step was abandoned or the agent shuts down).
    func revoke() {
        lock.withLock { lost = true }
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
    private let lock = NSLock()
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

    func remove(_ key: StepKey) {
        _ = lock.withLock { leases.removeValue(forKey: key) }
    }
}
