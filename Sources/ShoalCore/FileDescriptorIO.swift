import FoundationEssentials
import Glibc

/// Reads and writes on raw descriptors, retrying EINTR. Foundation's
/// `FileHandle.readDataToEndOfFile`, `availableData` and `write(_:)` trap
/// when a signal (SIGCHLD from a finished subprocess, say) interrupts them.
public enum FileDescriptorIO {
    /// Reads until end of file (or an error other than EINTR).
    public static func readToEnd(_ fd: Int32) -> Data {
        var data = Data()
        while let chunk = readSome(fd), !chunk.isEmpty { data.append(chunk) }
        return data
    }

    /// One read of up to 64 KiB: data, empty at end of file, nil on error.
    public static func readSome(_ fd: Int32) -> Data? {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count >= 0 { return Data(buffer[0..<count]) }
            if errno != EINTR { return nil }
        }
    }

    /// Writes all of `data`.
    /// - Throws: `ShoalError(.io)` when the descriptor refuses it.
    public static func writeAll(_ fd: Int32, _ data: Data) throws {
        try data.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw ShoalError(.io, "write failed", cause: String(cString: strerror(errno)))
                }
                offset += written
            }
        }
    }

    /// Writes a line to standard error, ignoring failures (there is nowhere left to report them).
    public static func printError(_ text: String) {
        try? writeAll(2, Data(text.utf8))
    }
}
