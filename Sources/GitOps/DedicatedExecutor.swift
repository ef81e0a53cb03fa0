import Foundation

/// A task executor with threads of its own, for the git HTTP server: its connections, FlyingFox's actors and the
/// handlers run there (a task executor preference is inherited by child tasks), so a process whose shared pool is
/// busy or blocked (two threads on a two-core host) still answers Argo CD and `git push` at once.
@available(macOS 15.0, *)
final class DedicatedExecutor: TaskExecutor, @unchecked Sendable {  // `jobs` is guarded by `condition`
    /// One pool for every server of the process; its threads live as long as the process.
    static let shared = DedicatedExecutor(threads: 2, name: "shoal-git-http")

    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []

    private init(threads: Int, name: String) {
        for index in 0..<threads {
            let thread = Thread { [self] in work() }
            thread.name = "\(name)-\(index)"
            thread.start()
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    private func work() {
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
