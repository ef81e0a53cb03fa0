import AgentRuntime
import Dispatch
import Glibc
import Logging
import Protocol
import ShoalCore

// The lean agent: the bus connection, heartbeats, leases and the idempotency record of one agent, without
// Foundation, so that an idle agent stays small. `shoal agent` validates its options and replaces itself with this
// program (same pid); the role's handlers run in a step worker (`shoal agent-worker`) it starts on the first step
// and stops when it has been idle. The bench role's no-op steps run here.

// SIGTERM and SIGINT (the parent-death signal is SIGTERM too) are taken by a thread of their own with `sigwait`:
// blocked here, before any other thread starts, so that every thread inherits the mask.
let stopSignals: sigset_t = {
    var signals = sigset_t()
    sigemptyset(&signals)
    sigaddset(&signals, SIGTERM)
    sigaddset(&signals, SIGINT)
    return signals
}()
withUnsafePointer(to: stopSignals) { _ = pthread_sigmask(SIG_BLOCK, $0, nil) }

let arguments = CommandLine.arguments
guard arguments.count == 3, arguments[1] == "--launch-fd", let fd = Int32(arguments[2]), fd > 2 else {
    FileDescriptorIO.printError("error: shoal-agent is started by `shoal agent`; run that instead\n")
    exit(2)
}
let launch: AgentLaunch
do {
    launch = try AgentLaunch.receive(fd: fd)
} catch {
    FileDescriptorIO.printError("error: \(error)\n")
    exit(2)
}
let level = Logger.Level(rawValue: launch.logLevel) ?? .info
LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = level
    return handler
}
let logger = Logger(label: "shoal.agent")
let bridge: WorkerBridge? =
    launch.role == .bench ? nil : WorkerBridge(command: launch.worker, idleTimeout: launch.workerIdle, logger: logger)
let service = AgentService(
    configuration: launch.configuration, handler: bridge ?? BenchHandler() as any StepHandler, logger: logger)

/// How long a graceful shutdown may take before the process exits anyway (as `runService` allows `shoal agent`).
let shutdownLimit = Duration.seconds(20)
Threads.start(name: "shoal-signals") {
    let parent = getppid()
    var signals = stopSignals
    var received: Int32 = 0
    while true {
        if launch.exitWithParent {
            // The parent-death signal normally comes first; this catches a parent replaced before it was set.
            var pause = timespec(tv_sec: 0, tv_nsec: 250_000_000)
            received = sigtimedwait(&signals, nil, &pause)
            if received < 0 && getppid() == parent { continue }
        } else if sigwait(&signals, &received) != 0 {
            continue
        }
        break
    }
    logger.info("shutting down", metadata: ["reason": "\(received > 0 ? "signal \(received)" : "parent process gone")"])
    service.stop()
    var left = timespec(tv_sec: Int(shutdownLimit.components.seconds), tv_nsec: 0)
    var request = left
    while nanosleep(&request, &left) != 0 && errno == EINTR { request = left }
    logger.error("graceful shutdown took too long, exiting")
    exit(1)
}

// The main thread waits here rather than in `dispatch_main`, which would end it with `pthread_exit` and so unwind
// its stack through the binary's unwind tables (half a MiB of pages that an idle agent keeps mapped).
let finished = DispatchSemaphore(value: 0)
let failure = Locked<String?>(nil)
Task.detached {
    do {
        try await service.run()
    } catch {
        failure.value = "\(error)"
    }
    await bridge?.shutdown()
    finished.signal()
}
finished.wait()
if let message = failure.value {
    FileDescriptorIO.printError("error: \(message)\n")
    exit(1)
}
exit(0)
