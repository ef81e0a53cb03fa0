import CShoalSupport
import Glibc
import Logging
import ServiceLifecycle

/// The child side of "children die with their parent".
public enum ParentDeath {
    /// Asks for `signal` when the parent dies, then checks the parent is still `expectedParent` (it may have died
    /// before the request took effect); exits at once with status 1 when it is not. Call first thing.
    /// - Parameters:
    ///   - expectedParent: the pid the parent passed in; nil checks only that the parent is not init.
    ///   - signal: sent on the parent's death; SIGTERM lets the service shut down gracefully.
    public static func bind(expectedParent: pid_t?, signal: Int32 = SIGTERM) {
        _ = shoal_set_parent_death_signal(signal)
        let parent = getppid()
        if let expectedParent, parent != expectedParent {
            FileDescriptorIO.printError("parent process \(expectedParent) is gone; exiting\n")
            exit(1)
        }
        if expectedParent == nil && parent == 1 {
            FileDescriptorIO.printError("parent process is gone; exiting\n")
            exit(1)
        }
    }
}

/// Runs a service until SIGTERM or SIGINT; optionally also until the parent
/// process goes away (embedded mode), so no child outlives `shoal create`.
/// Either way the shutdown is graceful (the service hands back what it was
/// doing) and is never cancelled halfway; a shutdown that takes longer than
/// `shutdownLimit` ends the process.
public func runService(
    _ service: some Service, logger: Logger, exitWithParent: Bool, shutdownLimit: Duration = .seconds(20)
) async throws {
    let group = ServiceGroup(
        configuration: .init(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        if exitWithParent {
            let parent = getppid()
            tasks.addTask {
                // The parent-death signal (SIGTERM) normally comes first; this catches a parent that was
                // replaced before it was set.
                while getppid() == parent { try await Task.sleep(for: .milliseconds(250)) }
                logger.warning("parent process gone, shutting down")
                await group.triggerGracefulShutdown()
                // Wait for the group rather than returning, which would cancel it mid-shutdown.
                try await Task.sleep(for: shutdownLimit)
                logger.error("graceful shutdown took too long, exiting")
                exit(1)
            }
        }
        // The first task to end is the service group: the watcher only ends by cancellation or exit.
        try await tasks.next()
        tasks.cancelAll()
    }
}
