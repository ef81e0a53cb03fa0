import FoundationEssentials
import Glibc

/// Writes files with an explicit mode, creating parents as needed. Secrets
/// are written 0600 from the first byte: the file is created with that mode
/// rather than chmod-ed after the content landed.
public enum SecureFile {
    /// Writes `data` to `path` atomically (temporary file, then rename). Missing parent directories are created
    /// 0700 for a file only its owner may read, 0755 otherwise.
    /// - Parameters:
    ///   - mode: permission bits, e.g. `0o600` for secrets.
    /// - Throws: `ShoalError(.io)` naming the path.
    public static func write(_ data: Data, to path: String, mode: mode_t = 0o644) throws {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        // A secret's own directory (kubeconfigs/WORKFLOW) is not listable by others either.
        try createDirectory(directory, mode: mode & 0o077 == 0 ? 0o700 : 0o755)
        let temporary = "\(directory)/.\(name).\(getpid()).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw ioError("cannot create", path) }
        var ok = fchmod(fd, mode) == 0
        data.withUnsafeBytes { buffer in
            var offset = 0
            while ok && offset < buffer.count {
                let written = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { ok = false } else { offset += written }
            }
        }
        close(fd)
        guard ok, rename(temporary, path) == 0 else {
            let error = ioError("cannot write", path)
            unlink(temporary)
            throw error
        }
    }

    /// Writes UTF-8 text; see `write(_:to:mode:)`.
    public static func write(_ text: String, to path: String, mode: mode_t = 0o644) throws {
        try write(Data(text.utf8), to: path, mode: mode)
    }

    /// Creates a directory and its parents.
    /// - Throws: `ShoalError(.io)` naming the path.
    public static func createDirectory(_ path: String, mode: mode_t = 0o755) throws {
        guard !path.isEmpty else { return }
        var info = stat()
        if stat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw ShoalError(.io, "cannot create directory \(path)", cause: "a file of that name exists")
            }
            return
        }
        // The parents first, then this one; another process creating it meanwhile is not an error.
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            try createDirectory(String(path[..<slash]), mode: mode)
        }
        guard mkdir(path, mode) == 0 || errno == EEXIST else { throw ioError("cannot create directory", path) }
    }

    /// The permission bits of a file, or nil when it does not exist.
    public static func mode(of path: String) -> mode_t? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return info.st_mode & 0o7777
    }

    private static func ioError(_ what: String, _ path: String) -> ShoalError {
        ShoalError(.io, "\(what) \(path)", cause: String(cString: strerror(errno)))
    }
}
