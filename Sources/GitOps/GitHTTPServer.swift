import Foundation
import ShoalSupport

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Serves git repositories over smart HTTP, read-only, by running `git http-backend` as a CGI program for each
/// request. Argo CD inside the cluster clones from it; dumb HTTP would not do, Argo CD needs the smart protocol.
///
/// Every request is read with size limits and timeouts, answered, and its connection closed. Pushes are refused
/// (no authenticated user is ever passed to the backend). A malformed request gets a 4xx answer; it never stops the
/// server.
public final class GitHTTPServer: @unchecked Sendable {  // mutable state is guarded by `lock`
    /// Limits and timeouts, with defaults for a small GitOps repository.
    public struct Limits: Sendable {
        /// The largest request body accepted (after de-chunking).
        public var maxBodyBytes = 32 * 1024 * 1024
        /// How long a client may take to send its whole request.
        public var requestTimeout: Duration = .seconds(30)
        /// How long `git http-backend` may run.
        public var backendTimeout: Duration = .seconds(120)
        /// Connections served at once; more are answered 503.
        public var maxConnections = 16
        public init() {}
    }

    /// The directory whose repositories are served.
    public let root: String
    public let host: String
    public let limits: Limits
    private let requestedPort: Int

    private let lock = NSLock()
    private var listener: Int32 = -1
    private var boundPort: Int?
    private var stopping: StopFlag?
    private var acceptLoopDone: DispatchSemaphore?
    private let connections = ConnectionCounter()

    /// - Parameters:
    ///   - root: the directory holding the repositories; `http://<host>:<port>/<path below root>` serves each.
    ///   - host: the numeric address to listen on (IPv4 or IPv6); `0.0.0.0` to be reachable from a cluster.
    ///   - port: the TCP port; 0 picks a free one.
    ///   - limits: request limits and timeouts.
    /// - Throws: `ShoalError(.invalidInput)` when `root` is not a directory or the port is out of range,
    ///   `.executableNotFound` without git.
    public init(root: String, host: String = "127.0.0.1", port: Int = 0, limits: Limits = Limits()) throws {
        var isDirectory: ObjCBool = false
        let absolute = URL(fileURLWithPath: root).standardizedFileURL.path
        guard FileManager.default.fileExists(atPath: absolute, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ShoalError(.invalidInput, "cannot serve git repositories from \(root): not a directory")
        }
        guard (0...65535).contains(port) else {
            throw ShoalError(.invalidInput, "invalid port \(port) for the git HTTP server: use 0-65535")
        }
        guard ProcessRunner.locate("git") != nil else {
            throw ShoalError(.executableNotFound, "git is not installed or not on PATH")
        }
        self.root = absolute
        self.host = host
        self.requestedPort = port
        self.limits = limits
    }

    /// The accept thread holds no reference to the server, so dropping the last one stops it.
    deinit { stop() }

    /// The port being listened on, or nil when stopped.
    public var port: Int? {
        lock.lock()
        defer { lock.unlock() }
        return boundPort
    }

    /// The URL of a repository below `root`, as seen from `host` (the address a client uses to reach this machine).
    public func url(repository: String, host clientHost: String? = nil) -> String? {
        guard let port else { return nil }
        var address = clientHost ?? host
        if address.contains(":") && !address.hasPrefix("[") { address = "[\(address)]" }
        return "http://\(address):\(port)/\(repository)"
    }

    /// This machine's non-loopback IPv4 addresses on interfaces that are up: candidates for the address a cluster
    /// reaches the server at (the Applications' repoURL).
    public static func hostAddresses() -> [String] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var addresses: [String] = []
        for entry in sequence(first: first, next: { $0.pointee.ifa_next }) {
            let flags = Int32(entry.pointee.ifa_flags)
            guard let address = entry.pointee.ifa_addr, Int32(address.pointee.sa_family) == AF_INET,
                flags & Int32(IFF_UP) != 0, flags & Int32(IFF_LOOPBACK) == 0
            else { continue }
            var storage = sockaddr_storage()
            withUnsafeMutableBytes(of: &storage) { target in
                target.copyMemory(from: UnsafeRawBufferPointer(start: address, count: MemoryLayout<sockaddr_in>.size))
            }
            let text = numericHost(&storage)
            if !text.isEmpty && !addresses.contains(text) { addresses.append(text) }
        }
        return addresses
    }

    /// Binds, listens and starts serving on a thread of its own.
    /// - Returns: the bound port.
    /// - Throws: `ShoalError(.invalidInput)` for an address that is not numeric, `.io` when the socket cannot be
    ///   bound (port in use, say).
    @discardableResult
    public func start() throws -> Int {
        lock.lock()
        defer { lock.unlock() }
        if let boundPort { return boundPort }
        let fd = try Self.openListener(host: host, port: requestedPort)
        guard let port = Self.localPort(fd) else {
            close(fd)
            throw ShoalError(.io, "cannot read the git HTTP server's port", cause: String(cString: strerror(errno)))
        }
        listener = fd
        boundPort = port
        let flag = StopFlag()
        stopping = flag
        let done = DispatchSemaphore(value: 0)
        acceptLoopDone = done
        let context = Connection.Context(root: root, limits: limits, counter: connections)
        let thread = Thread {
            Self.acceptLoop(fd, context: context, stopping: flag)
            done.signal()
        }
        thread.name = "shoal-git-http"
        thread.start()
        return port
    }

    /// Stops accepting connections and closes the listening socket. Requests in progress finish on their own
    /// threads, within their timeouts.
    public func stop() {
        lock.lock()
        guard let done = acceptLoopDone else {
            lock.unlock()
            return
        }
        stopping?.set()
        stopping = nil
        acceptLoopDone = nil
        lock.unlock()
        done.wait()
        lock.lock()
        close(listener)
        listener = -1
        boundPort = nil
        lock.unlock()
    }

    private static func acceptLoop(_ fd: Int32, context: Connection.Context, stopping: StopFlag) {
        while !stopping.isSet {
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, 200)
            guard ready > 0 else { continue }
            var address = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let client = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    accept(fd, $0, &length)
                }
            }
            guard client >= 0 else { continue }
            // Keep client sockets out of the git processes started for other requests.
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            let peer = Self.numericHost(&address)
            guard context.counter.tryAcquire(limit: context.limits.maxConnections) else {
                Connection(fd: client, peer: peer, context: context).refuse(status: 503)
                continue
            }
            Thread.detachNewThread {
                Connection(fd: client, peer: peer, context: context).serve()
                context.counter.release()
            }
        }
    }

    // MARK: - Sockets

    private static func openListener(host: String, port: Int) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var info: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &info) == 0, let first = info else {
            throw ShoalError(
                .invalidInput,
                "invalid listen address '\(host.prefix(100))' for the git HTTP server: give an IP address")
        }
        defer { freeaddrinfo(info) }
        let fd = socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ioError("cannot create a socket for the git HTTP server") }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            let error = ioError("cannot listen on \(host):\(port) for the git HTTP server")
            close(fd)
            throw error
        }
        guard listen(fd, 64) == 0 else {
            let error = ioError("cannot listen on \(host):\(port) for the git HTTP server")
            close(fd)
            throw error
        }
        return fd
    }

    private static func localPort(_ fd: Int32) -> Int? {
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard status == 0 else { return nil }
        return withUnsafePointer(to: &address) { pointer -> Int? in
            switch Int32(pointer.pointee.ss_family) {
            case AF_INET:
                return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    Int(UInt16(bigEndian: $0.pointee.sin_port))
                }
            case AF_INET6:
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    Int(UInt16(bigEndian: $0.pointee.sin6_port))
                }
            default:
                return nil
            }
        }
    }

    private static func numericHost(_ address: inout sockaddr_storage) -> String {
        var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        let length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, length, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST)
            }
        }
        guard status == 0 else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func ioError(_ message: String) -> ShoalError {
        ShoalError(.io, message, cause: String(cString: strerror(errno)))
    }
}

/// Tells the accept thread to end.
final class StopFlag: @unchecked Sendable {  // `value` is guarded by `lock`
    private let lock = NSLock()
    private var value = false

    var isSet: Bool {
        lock.lock()
        defer { lock.unlock() }
        return value
    }

    func set() {
        lock.lock()
        value = true
        lock.unlock()
    }
}

/// Counts the connections being served.
final class ConnectionCounter: @unchecked Sendable {  // `active` is guarded by `lock`
    private let lock = NSLock()
    private var active = 0

    func tryAcquire(limit: Int) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard active < limit else { return false }
        active += 1
        return true
    }

    func release() {
        lock.lock()
        active -= 1
        lock.unlock()
    }
}

/// One client connection: read one request, answer it, close.
struct Connection {
    struct Context: Sendable {
        var root: String
        var limits: GitHTTPServer.Limits
        var counter: ConnectionCounter
    }

    let fd: Int32
    let peer: String
    let context: Context

    func refuse(status: Int) {
        respond(status: status, reason: HTTPParsing.reasonPhrase(status), headers: [], body: [])
        close(fd)
    }

    func serve() {
        defer { close(fd) }
        // A stalled client costs at most this per read; the whole request has its own deadline.
        var idle = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &idle, socklen_t(MemoryLayout<timeval>.size))
        var sendTimeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &sendTimeout, socklen_t(MemoryLayout<timeval>.size))
        do {
            let (head, body) = try readRequest()
            let output = try runBackend(head, body: body)
            guard let response = HTTPParsing.parseCGIResponse(output) else {
                throw HTTPError(status: 500, reason: "malformed backend response")
            }
            let passed = response.headers.filter {
                !["content-length", "connection", "transfer-encoding"].contains($0.0.lowercased())
            }
            respond(status: response.status, reason: response.reason, headers: passed, body: response.body)
        } catch let error as HTTPError {
            respond(
                status: error.status, reason: HTTPParsing.reasonPhrase(error.status),
                headers: [("Content-Type", "text/plain; charset=utf-8")], body: Array((error.reason + "\n").utf8)[...])
        } catch {
            respond(
                status: 500, reason: HTTPParsing.reasonPhrase(500), headers: [("Content-Type", "text/plain")],
                body: Array("internal error\n".utf8)[...])
        }
    }

    // MARK: - Request

    private func readRequest() throws -> (HTTPRequestHead, [UInt8]) {
        let deadline = ContinuousClock.now + context.limits.requestTimeout
        var buffer: [UInt8] = []
        var headEnd: Int?
        while headEnd == nil {
            guard try receive(into: &buffer, deadline: deadline) else {
                throw HTTPError.badRequest("connection closed before the request head ended")
            }
            headEnd = HTTPParsing.headEnd(buffer)
            if headEnd == nil && buffer.count > HTTPParsing.maxHeaderBytes {
                throw HTTPError(status: 431, reason: "request head too large")
            }
        }
        let end = headEnd!
        let head = try HTTPParsing.parseHead(buffer[..<end])
        guard head.method == "GET" || head.method == "POST" else {
            throw HTTPError(status: 405, reason: "only GET and POST are served")
        }
        try checkPath(head)
        let framing = try HTTPParsing.framing(of: head, maxBody: context.limits.maxBodyBytes)
        if framing != .none, head.header("Expect")?.lowercased() == "100-continue" {
            sendAll(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)[...])
        }
        var rest = Array(buffer[end...])
        switch framing {
        case .none:
            return (head, [])
        case .length(let length):
            while rest.count < length {
                guard try receive(into: &rest, deadline: deadline) else {
                    throw HTTPError.badRequest("connection closed inside the request body")
                }
            }
            return (head, Array(rest.prefix(length)))
        case .chunked:
            while true {
                if let decoded = try HTTPParsing.decodeChunked(rest[...], limit: context.limits.maxBodyBytes) {
                    return (head, decoded.body)
                }
                guard rest.count <= context.limits.maxBodyBytes + 64 * 1024 else {
                    throw HTTPError(status: 413, reason: "request body too large")
                }
                guard try receive(into: &rest, deadline: deadline) else {
                    throw HTTPError.badRequest("connection closed inside the request body")
                }
            }
        }
    }

    /// Only paths below the served root, made of ordinary characters; the query only as git sends it.
    private func checkPath(_ head: HTTPRequestHead) throws {
        let components = head.path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        let ordinary = head.path.unicodeScalars.allSatisfy {
            switch $0 {
            case "a"..."z", "A"..."Z", "0"..."9", "/", ".", "_", "-", "+", "~": true
            default: false
            }
        }
        guard ordinary, !components.isEmpty,
            components.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." && !$0.hasPrefix(".") || $0 == ".git" })
        else {
            throw HTTPError(status: 404, reason: "not found")
        }
        let query = head.query
        guard query.isEmpty || query == "service=git-upload-pack" || query == "service=git-receive-pack" else {
            throw HTTPError.badRequest("unexpected query")
        }
    }

    /// Reads more bytes. Returns false at end of stream.
    private func receive(into buffer: inout [UInt8], deadline: ContinuousClock.Instant) throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            guard ContinuousClock.now < deadline else { throw HTTPError(status: 408, reason: "request timeout") }
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                buffer.append(contentsOf: chunk[..<count])
                return true
            }
            if count == 0 { return false }
            if errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK { continue }
            throw HTTPError.badRequest("receive failed")
        }
    }

    // MARK: - Backend

    private func runBackend(_ head: HTTPRequestHead, body: [UInt8]) throws -> [UInt8] {
        guard let git = ProcessRunner.locate("git") else { throw HTTPError(status: 500, reason: "git not found") }
        let inherited = ProcessInfo.processInfo.environment
        var environment: [String: String] = [
            "PATH": inherited["PATH"] ?? "/usr/local/bin:/usr/bin:/bin",
            "GIT_PROJECT_ROOT": context.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": head.version,
            "SERVER_SOFTWARE": "shoal",
            "REQUEST_METHOD": head.method,
            "PATH_INFO": head.path,
            "QUERY_STRING": head.query,
            "CONTENT_TYPE": head.header("Content-Type") ?? "",
            "CONTENT_LENGTH": String(body.count),
            "REMOTE_ADDR": peer,
            // No user: git http-backend then refuses receive-pack, so nobody can push.
            "REMOTE_USER": "",
            "HTTP_CONTENT_ENCODING": head.header("Content-Encoding") ?? "",
            "HTTP_GIT_PROTOCOL": head.header("Git-Protocol") ?? "",
            "GIT_CONFIG_NOSYSTEM": "1",
        ]
        if let home = inherited["HOME"] { environment["HOME"] = home }
        let result = try BinaryProcess.run(
            git, ["http-backend"], environment: environment, input: body, timeout: context.limits.backendTimeout)
        guard !result.timedOut else { throw HTTPError(status: 500, reason: "git http-backend timed out") }
        guard !result.output.isEmpty else { throw HTTPError(status: 500, reason: "git http-backend failed") }
        return result.output
    }

    // MARK: - Response

    private func respond(status: Int, reason: String, headers: [(String, String)], body: ArraySlice<UInt8>) {
        var head = "HTTP/1.1 \(status) \(reason)\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        sendAll(Array(head.utf8)[...])
        sendAll(body)
    }

    private func sendAll(_ bytes: ArraySlice<UInt8>) {
        var offset = bytes.startIndex
        while offset < bytes.endIndex {
            let sent = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent < 0 && errno == EINTR { continue }
            guard sent > 0 else { return }
            offset += sent
        }
    }
}

/// Runs a program with binary standard input and output and a timeout. `ProcessRunner` carries output as text,
/// which would corrupt pack data.
enum BinaryProcess {
    struct Result {
        var status: Int32
        var output: [UInt8]
        var timedOut: Bool
    }

    static func run(
        _ executable: String, _ arguments: [String], environment: [String: String], input: [UInt8],
        timeout: Duration
    ) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        let stdin = Pipe()
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        do {
            try ProcessLaunch.run(process)
        } catch {
            throw HTTPError(status: 500, reason: "cannot start git http-backend")
        }
        let output = Drain(stdout.fileHandleForReading)
        let errors = Drain(stderr.fileHandleForReading)
        let writer = stdin.fileHandleForWriting.fileDescriptor
        let inputDone = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            // The backend may exit without reading all input; EPIPE then ends the write instead of a SIGPIPE
            // killing the whole process. The signal stays blocked on this short-lived thread only.
            var set = sigset_t()
            sigemptyset(&set)
            sigaddset(&set, SIGPIPE)
            pthread_sigmask(SIG_BLOCK, &set, nil)
            var offset = 0
            input.withUnsafeBytes { buffer in
                while offset < buffer.count {
                    let written = write(writer, buffer.baseAddress! + offset, buffer.count - offset)
                    if written < 0 && errno == EINTR { continue }
                    if written <= 0 { break }
                    offset += written
                }
            }
            try? stdin.fileHandleForWriting.close()
            inputDone.signal()
        }
        var timedOut = false
        let seconds = Double(timeout.milliseconds) / 1000
        if exited.wait(timeout: .now() + seconds) == .timedOut {
            timedOut = true
            process.terminate()
            if exited.wait(timeout: .now() + 2) == .timedOut {
                kill(process.processIdentifier, SIGKILL)
                exited.wait()
            }
        }
        inputDone.wait()
        let bytes = output.finish()
        _ = errors.finish()
        return Result(status: process.terminationStatus, output: bytes, timedOut: timedOut)
    }

    /// Reads a pipe to its end on its own thread.
    private final class Drain: @unchecked Sendable {  // `data` is written once before `done` is signalled
        private var data = Data()
        private let done = DispatchSemaphore(value: 0)

        init(_ handle: FileHandle) {
            Thread.detachNewThread { [self] in
                data = FileDescriptorIO.readToEnd(handle.fileDescriptor)
                done.signal()
            }
        }

        func finish() -> [UInt8] {
            done.wait()
            return [UInt8](data)
        }
    }
}
