import Foundation

/// An exclusive owner of a journal or an output directory, for the life of this process: an `flock` on a lock
/// file beside it, which the kernel drops when the process dies however it dies (so a crash leaves no stale lock).
/// The file names the holder, so the next one to try is told who has it.
public final class OwnerLock: Sendable {
    /// The lock file.
    public let path: String
    private let descriptor: Int32

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = descriptor
    }

    /// Takes the lock on `path` (creating the file and its directory), or says who holds it.
    /// - Parameters:
    ///   - path: the lock file, e.g. `journal.sqlite.lock`.
    ///   - subject: what it protects, for the message: `the journal /x/journal.sqlite`.
    /// - Throws: `ShoalError(.alreadyRunning)` naming the holder's pid, host and start; `ShoalError(.io)` when the
    ///   file cannot be opened.
    public static func acquire(_ path: String, subject: String) throws -> OwnerLock {
        try SecureFile.createDirectory((path as NSString).deletingLastPathComponent)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw ShoalError(.io, "cannot open the lock file \(path)", cause: String(cString: strerror(errno)))
        }
        var result: Int32
        repeat { result = flock(fd, LOCK_EX | LOCK_NB) } while result != 0 && errno == EINTR
        guard result == 0 else {
            let holder = String(decoding: FileDescriptorIO.readToEnd(fd), as: UTF8.self)
            close(fd)
            throw ShoalError(
                .alreadyRunning,
                "\(subject) is in use by another shoal (\(describe(holder))); stop it first or use another one")
        }
        let since = ISO8601DateFormatter().string(from: Date())
        let line = "pid=\(getpid()) host=\(ProcessInfo.processInfo.hostName) since=\(since)\n"
        _ = ftruncate(fd, 0)
        _ = lseek(fd, 0, SEEK_SET)
        try? FileDescriptorIO.writeAll(fd, Data(line.utf8))
        return OwnerLock(path: path, descriptor: fd)
    }

    /// `pid 42 on host lab-1 since 2026-12-01T10:00:00Z` from the holder's line.
    private static func describe(_ holder: String) -> String {
        var fields: [String: String] = [:]
        for field in holder.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            let parts = field.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = Names.printable(String(parts[1])) }
        }
        guard let pid = fields["pid"] else { return "holder unknown" }
        return "pid \(pid) on host \(fields["host"] ?? "?") since \(fields["since"] ?? "?")"
    }

    deinit {
        close(descriptor)
    }
}
