import Coordinator
import Foundation
import ShoalSupport

/// What `create` and `resume` share in embedded mode: one owner per output directory, and workflows of earlier
/// runs there marked `interrupted` rather than silently run on.
enum EmbeddedRun {
    /// Creates `OUTPUT` and `OUTPUT/.shoal`, and takes `OUTPUT/.shoal/create.lock`: a second run in the same
    /// directory would replace this one's keys and compete for its journal. Fails with one line.
    static func takeOutputDirectory(_ output: String) -> OwnerLock {
        let outputPath = absolutePath(output)
        do {
            try SecureFile.createDirectory(outputPath)
            try SecureFile.createDirectory(outputPath + "/.shoal", mode: 0o700)
        } catch let error as ShoalError {
            fail("cannot use output directory '\(output)': \(error.cause ?? error.message)")
        } catch {
            fail("cannot use output directory '\(output)': \(error)")
        }
        do {
            return try OwnerLock.acquire(outputPath + "/.shoal/create.lock", subject: "the output directory \(output)")
        } catch let error as ShoalError {
            fail(error.description)
        } catch {
            fail("\(error)")
        }
    }

    /// Marks the workflows still `running` in the embedded journal of `output` interrupted. Only while
    /// `create.lock` is held and no coordinator runs on the journal (its lock is taken here too).
    /// - Returns: the ids marked now, and every interrupted workflow of the journal; nil when the journal could
    ///   not be opened or is owned by a live coordinator.
    static func interruptUnfinished(output: String) -> (marked: [String], interrupted: [String])? {
        let path = absolutePath(output) + "/.shoal/journal.sqlite"
        guard FileManager.default.fileExists(atPath: path) else { return ([], []) }
        do {
            let owner = try OwnerLock.acquire(path + ".lock", subject: "the journal \(path)")
            defer { withExtendedLifetime(owner) {} }
            let journal = try Journal(path: path)
            try journal.checkKey()
            let marked = try journal.interruptUnfinished(at: Int64(Date().timeIntervalSince1970 * 1000))
            return (marked, try journal.summaries().filter { $0.state == .interrupted }.map(\.id))
        } catch {
            return nil
        }
    }

    /// At the start of an embedded run: one line naming the interrupted workflows of the directory (but
    /// `except`, the one being resumed) and how to resume them; `quiet` (`-q`) marks them without a word.
    static func reportLeftovers(output: String, except: String? = nil, quiet: Bool = false) {
        guard let ids = interruptUnfinished(output: output)?.interrupted.filter({ $0 != except }), let first = ids.first,
            !quiet
        else { return }
        let names = ids.count == 1 ? "workflow \(first) was" : "workflows \(ids.joined(separator: ", ")) were"
        print(
            "note: \(names) interrupted and not run on; resume with: shoal resume \(first) -d \(absolutePath(output))")
        fflush(nil)
    }

    /// On Ctrl-C or SIGTERM, once the children have stopped: marks the run's workflow interrupted and says how
    /// to resume it.
    static func interruptedHook(output: String) -> @Sendable () -> Void {
        {
            guard let ids = interruptUnfinished(output: output)?.marked else {
                FileDescriptorIO.printError(
                    "the journal of \(output) is still in use; the next create or resume there marks its workflow "
                        + "interrupted\n")
                return
            }
            for id in ids {
                FileDescriptorIO.printError(
                    "workflow \(id) interrupted; resume with: shoal resume \(id) -d \(absolutePath(output))\n")
            }
        }
    }
}
