import Foundation
import Protocol

/// The agent's right to run one attempt of a step. It lasts as long as the coordinator is heard from within the
/// liveness window (the same window after which the coordinator gives the step to another agent) and, once lost,
/// is never regained: a process frozen past the window (SIGSTOP, a paused VM) finds its leases expired when it
/// wakes, before it can do a step's work a second time.
public final class StepLease: @unchecked Sendable {  // `expiry`, `lost`, `woken` and `waiter` are guarded by `lock`
    private let lock = NSLock()
    private var expiry: ContinuousClock.Instant
    private var lost = false
    /// `waitUntilLost` returns, or is to return at once.
    private var woken = false
    private var waiter: CheckedContinuation<Void, Never>?

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
        let waiter = lock.withLock {
            let now = ContinuousClock.now
            if lost || now >= expiry {
                return loseLocked()
            }
            expiry = now + window
            return nil
        }
        waiter?.resume()
    }

    /// Ends the lease at once (the step was abandoned or the agent shuts down).
    func revoke() {
        lock.withLock { loseLocked() }?.resume()
    }

    /// Marks an expired lease lost (what `isHeld` already says), waking its waiter.
    func endIfLapsed() {
        lock.withLock { !lost && ContinuousClock.now >= expiry ? loseLocked() : nil }?.resume()
    }

    /// Returns once the lease is lost (revoked, or found expired by `renew` or `endIfLapsed`) or the calling
    /// task is cancelled.
    func waitUntilLost() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = lock.withLock {
                    if lost || woken || ContinuousClock.now >= expiry { return true }
                    waiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            lock.withLock { () -> CheckedContinuation<Void, Never>? in
                woken = true
                defer { waiter = nil }
                return waiter
            }?.resume()
        }
    }

    /// Under `lock`: the lease is lost; returns the waiter to resume once unlocked.
    private func loseLocked() -> CheckedContinuation<Void, Never>? {
        lost = true
        woken = true
        defer { waiter = nil }
        return waiter
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

    /// Ends the leases that ran out (nothing heard from the coordinator within their window).
    func endLapsed() {
        for lease in lock.withLock({ Array(leases.values) }) { lease.endIfLapsed() }
    }

    func remove(_ key: StepKey) {
        _ = lock.withLock { leases.removeValue(forKey: key) }
    }
}
