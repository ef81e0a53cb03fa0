import FlyingFox
import FlyingSocks
import Foundation
import Logging
import ServiceLifecycle
import ShoalSupport

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Serves git repositories over smart HTTP by running `git http-backend` as a CGI program for each request, on
/// FlyingFox's HTTP/1.1 server. Argo CD clones from it (dumb HTTP would not do: Argo CD needs the smart protocol),
/// and, when a push token is set, `git push` reaches it too.
///
/// FlyingFox reads the request (Content-Length and chunked bodies, keep-alive); this type decides what is served:
/// a `Host` header is required, paths stay below the root, queries are only what git sends, bodies are bounded,
/// and pushes need the token (HTTP Basic, any user name). A refused request gets a 4xx answer; a request FlyingFox
/// cannot frame closes its connection. Neither stops the server.
public final class GitHTTPServer: @unchecked Sendable {  // `running` is guarded by `lock`
    /// Limits and timeouts, with defaults for a small GitOps repository.
    public struct Limits: Sendable {
        /// The largest request body accepted (after de-chunking).
        public var maxBodyBytes = 32 * 1024 * 1024
        /// The largest request line plus headers accepted.
        public var maxHeadBytes = 16 * 1024
        /// How long `git http-backend` may run.
        public var backendTimeout: Duration = .seconds(120)
        /// How long a whole request may take, body and backend included.
        public var requestTimeout: Duration = .seconds(180)
        public init() {}
    }

    /// The directory whose repositories are served.
    public let root: String
    public let host: String
    public let limits: Limits
    /// HTTP Basic password a push must carry; nil refuses every push.
    let pushToken: String?
    private let requestedPort: Int
    private let logger: Logger

    private let lock = NSLock()
    private var running: (server: HTTPServer, task: Task<Void, any Error>, port: Int)?
    private let inFlight = RequestCounter()

    /// - Parameters:
    ///   - root: the directory holding the repositories; `http://<host>:<port>/<path below root>` serves each.
    ///   - host: the numeric address to listen on (IPv4 or IPv6); `0.0.0.0` to be reachable from a cluster.
    ///   - port: the TCP port; 0 picks a free one.
    ///   - limits: request limits and timeouts.
    ///   - pushToken: when set, pushes carrying it as their HTTP Basic password are accepted (a missing repository
    ///     whose path ends in `.git` is created bare on the first push); when nil, every push is refused.
    ///   - logger: request errors at debug level.
    /// - Throws: `ShoalError(.invalidInput)` when `root` is not a directory, the port is out of range or the host is
    ///   not a numeric address; `.executableNotFound` without git.
    public init(
        root: String, host: String = "127.0.0.1", port: Int = 0, limits: Limits = Limits(), pushToken: String? = nil,
        logger: Logger = Logger(label: "shoal.git-http")
    ) throws {
        var isDirectory: ObjCBool = false
        let absolute = URL(fileURLWithPath: root).standardizedFileURL.path
        guard FileManager.default.fileExists(atPath: absolute, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ShoalError(.invalidInput, "cannot serve git repositories from \(root): not a directory")
        }
        guard (0...65535).contains(port) else {
            throw ShoalError(.invalidInput, "invalid port \(port) for the git HTTP server: use 0-65535")
        }
        guard NetworkAddress.isIPv4(host) || NetworkAddress.isIPv6(host) else {
            throw ShoalError(
                .invalidInput,
                "invalid listen address '\(host.prefix(100))' for the git HTTP server: give an IP address")
        }
        if let pushToken, pushToken.count < 16 {
            throw ShoalError(.invalidInput, "the git HTTP server's push token must have at least 16 characters")
        }
        guard ProcessRunner.locate("git") != nil else {
            throw ShoalError(.executableNotFound, "git is not installed or not on PATH")
        }
        self.root = absolute
        self.host = host
        self.requestedPort = port
        self.limits = limits
        self.pushToken = pushToken
        self.logger = logger
    }

    /// Dropping the last reference stops serving.
    deinit { running?.task.cancel() }

    /// The port being listened on, or nil when stopped.
    public var port: Int? {
        lock.withLock { running?.port }
    }

    /// The URL of a repository below `root`, as seen from `host` (the address a client uses to reach this machine).
    public func url(repository: String, host clientHost: String? = nil) -> String? {
        guard let port else { return nil }
        var address = clientHost ?? host
        if address.contains(":") && !address.hasPrefix("[") { address = "[\(address)]" }
        return "http://\(address):\(port)/\(repository)"
    }

    /// Binds, listens and serves on tasks of its own until `stop()`.
    /// - Returns: the bound port.
    /// - Throws: `ShoalError(.io)` when the socket cannot be bound (port in use, say).
    @discardableResult
    public func start() async throws -> Int {
        if let port { return port }
        let address: any SocketAddress =
            NetworkAddress.isIPv4(host)
            ? try sockaddr_in.inet(ip4: host, port: UInt16(requestedPort))
            : try sockaddr_in6.inet6(ip6: host, port: UInt16(requestedPort))
        let handler = GitBackendHandler(
            root: root, limits: limits, pushToken: pushToken, logger: logger, inFlight: inFlight)
        let seconds = Double(limits.requestTimeout.components.seconds)
        let server = HTTPServer(
            config: HTTPServer.Configuration(
                address: address, timeout: seconds, logger: FlyingFoxLogger(logger: logger)),
            handler: handler)
        let ended = RequestCounter()
        let run: @Sendable () async throws -> Void = {
            defer { ended.enter() }
            try await server.run()
        }
        let task: Task<Void, any Error>
        if #available(macOS 15.0, *) {
            task = Task(executorPreference: DedicatedExecutor.shared, operation: run)
        } else {
            task = Task(operation: run)
        }
        // Listening, or run() ended (a port in use, say): whichever comes first, within 5 s.
        let deadline = ContinuousClock.now + .seconds(5)
        while !(await server.isListening) && ended.value == 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
        guard await server.isListening else {
            task.cancel()
            let cause: String
            if case .failure(let failure) = await task.result {
                cause = "\(failure)"
            } else {
                cause = "not listening after 5 s"
            }
            throw ShoalError(.io, "cannot listen on \(host):\(requestedPort) for the git HTTP server", cause: cause)
        }
        guard let bound = await server.listeningAddress, let port = Self.boundPort(of: bound) else {
            task.cancel()
            throw ShoalError(.io, "cannot read the git HTTP server's port")
        }
        let existing: Int? = lock.withLock {
            if let running { return running.port }
            running = (server, task, port)
            return nil
        }
        if let existing {
            task.cancel()
            return existing
        }
        return port
    }

    /// Stops accepting connections, lets requests in progress finish for up to `grace`, and closes the listener.
    public func stop(grace: Duration = .seconds(2)) async {
        let current = lock.withLock {
            let current = running
            running = nil
            return current
        }
        guard let current else { return }
        let inFlight = inFlight
        await withTaskGroup(of: Void.self) { group in
            // FlyingFox's stop closes the listener and ends idle connections, then waits for its accept task;
            // that task ends when cancelled, which happens as soon as no request is in progress any more.
            group.addTask { await current.server.stop(timeout: Double(grace.components.seconds) + 1) }
            group.addTask {
                let deadline = ContinuousClock.now + grace
                while inFlight.value > 0 && ContinuousClock.now < deadline {
                    try? await Task.sleep(for: .milliseconds(20))
                }
                current.task.cancel()
            }
        }
        _ = await current.task.result
    }

    private static func boundPort(of address: Socket.Address) -> Int? {
        switch address {
        case .ip4(_, let port), .ip6(_, let port): Int(port)
        case .unix: nil
        }
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
            var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            let status = getnameinfo(
                address, socklen_t(MemoryLayout<sockaddr_in>.size), &buffer, socklen_t(buffer.count), nil, 0,
                NI_NUMERICHOST)
            guard status == 0 else { continue }
            let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if !text.isEmpty && !addresses.contains(text) { addresses.append(text) }
        }
        return addresses
    }
}

/// Why a request was refused, with the HTTP status to answer.
struct HTTPError: Error, Equatable {
    var status: Int
    var reason: String

    static func badRequest(_ reason: String) -> HTTPError { HTTPError(status: 400, reason: reason) }
}

/// Counts the requests being answered, so that a graceful stop waits for them and no longer.
final class RequestCounter: @unchecked Sendable {  // `count` is guarded by `lock`
    private let lock = NSLock()
    private var count = 0

    var value: Int { lock.withLock { count } }
    func enter() { lock.withLock { count += 1 } }
    func leave() { lock.withLock { count -= 1 } }
}

/// Answers one request by running `git http-backend`.
struct GitBackendHandler: HTTPHandler {
    let root: String
    let limits: GitHTTPServer.Limits
    let pushToken: String?
    let logger: Logger
    let inFlight: RequestCounter

    func handleRequest(_ request: HTTPRequest) async throws -> HTTPResponse {
        inFlight.enter()
        defer { inFlight.leave() }
        do {
            return try await serve(request)
        } catch let error as HTTPError {
            logger.debug(
                "git HTTP request refused",
                metadata: ["http.status": "\(error.status)", "http.reason": "\(error.reason)"])
            var headers: HTTPHeaders = [.contentType: "text/plain; charset=utf-8"]
            if error.status == 401 { headers[HTTPHeader("WWW-Authenticate")] = "Basic realm=\"shoal\"" }
            return HTTPResponse(
                statusCode: HTTPStatusCode(error.status, phrase: Self.reasonPhrase(error.status)), headers: headers,
                body: Data((error.reason + "\n").utf8))
        }
    }

    private func serve(_ request: HTTPRequest) async throws -> HTTPResponse {
        guard let host = request.headers[.host], !host.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw HTTPError.badRequest("a Host header is required")
        }
        guard request.version == .http11 || request.version.rawValue == "HTTP/1.0" else {
            throw HTTPError(status: 505, reason: "only HTTP/1.1 is served")
        }
        guard request.method == .GET || request.method == .POST else {
            throw HTTPError(status: 405, reason: "only GET and POST are served")
        }
        let headBytes = request.headers.reduce(request.target.rawValue.utf8.count) {
            $0 + $1.key.rawValue.utf8.count + $1.value.utf8.count + 4
        }
        guard headBytes <= limits.maxHeadBytes else {
            throw HTTPError(status: 431, reason: "request head too large")
        }
        let path = try Self.checkedPath(request.target.path(percentEncoded: true))
        let query = request.target.query(percentEncoded: true)
        guard query.isEmpty || query == "service=git-upload-pack" || query == "service=git-receive-pack" else {
            throw HTTPError.badRequest("unexpected query")
        }
        let isPush = query == "service=git-receive-pack" || path.hasSuffix("/git-receive-pack")
        if isPush {
            try authorizePush(request)
            try await createRepositoryIfMissing(path)
        }
        let body = try await readBody(request)
        let output = try await runBackend(request, path: path, query: query, body: body, push: isPush)
        guard let response = CGIResponse.parse(output) else {
            throw HTTPError(status: 500, reason: "malformed backend response")
        }
        var headers = HTTPHeaders()
        for (name, value) in response.headers
        where !["content-length", "connection", "transfer-encoding"].contains(name.lowercased()) {
            headers[HTTPHeader(name)] = value
        }
        return HTTPResponse(
            statusCode: HTTPStatusCode(response.status, phrase: response.reason), headers: headers,
            body: Data(response.body))
    }

    /// Only paths below the served root, made of ordinary characters (no percent-encoding, no dot segments).
    static func checkedPath(_ path: String) throws -> String {
        let ordinary = path.unicodeScalars.allSatisfy {
            switch $0 {
            case "a"..."z", "A"..."Z", "0"..."9", "/", ".", "_", "-", "+", "~": true
            default: false
            }
        }
        let components = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        guard path.hasPrefix("/"), ordinary, !components.isEmpty,
            components.allSatisfy({ (!$0.isEmpty && !$0.hasPrefix(".")) || $0 == ".git" })
        else {
            throw HTTPError(status: 404, reason: "not found")
        }
        return path
    }

    private func authorizePush(_ request: HTTPRequest) throws {
        guard let pushToken else { throw HTTPError(status: 403, reason: "pushes are not accepted by this server") }
        guard let authorization = request.headers[.authorization], authorization.hasPrefix("Basic "),
            let decoded = Data(base64Encoded: String(authorization.dropFirst(6))),
            let colon = decoded.firstIndex(of: UInt8(ascii: ":"))
        else { throw HTTPError(status: 401, reason: "a push needs credentials") }
        let password = Array(decoded[decoded.index(after: colon)...])
        guard Self.constantTimeEqual(password, Array(pushToken.utf8)) else {
            throw HTTPError(status: 401, reason: "wrong push credentials")
        }
    }

    static func constantTimeEqual(_ left: [UInt8], _ right: [UInt8]) -> Bool {
        var difference = UInt8(left.count == right.count ? 0 : 1)
        for index in 0..<max(left.count, right.count) {
            let a = index < left.count ? left[index] : 0
            let b = index < right.count ? right[index] : 0
            difference |= a ^ b
        }
        return difference == 0
    }

    /// An authorized first push to `.../NAME.git` creates that bare repository, as hosted git servers do.
    private func createRepositoryIfMissing(_ path: String) async throws {
        var repository = path
        for suffix in ["/info/refs", "/git-receive-pack"] where repository.hasSuffix(suffix) {
            repository.removeLast(suffix.count)
        }
        let directory = root + repository
        guard repository.hasSuffix(".git"), !FileManager.default.fileExists(atPath: directory) else { return }
        try? SecureFile.createDirectory(directory)
        let result = try? await ProcessRunner().run(
            "git", ["init", "-q", "--bare", "-b", GitRepository.branch, directory], timeout: .seconds(30))
        guard result?.succeeded == true else {
            throw HTTPError(status: 500, reason: "cannot create the repository")
        }
    }

    private func readBody(_ request: HTTPRequest) async throws -> [UInt8] {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limits.maxBodyBytes {
            throw HTTPError(status: 413, reason: "request body too large")
        }
        var body: [UInt8] = []
        do {
            for try await chunk in request.bodySequence {
                body.append(contentsOf: chunk)
                guard body.count <= limits.maxBodyBytes else {
                    throw HTTPError(status: 413, reason: "request body too large")
                }
            }
        } catch let error as HTTPError {
            throw error
        } catch {
            throw HTTPError.badRequest("unreadable request body")
        }
        return body
    }

    private func runBackend(_ request: HTTPRequest, path: String, query: String, body: [UInt8], push: Bool)
        async throws -> [UInt8]
    {
        guard let git = ProcessRunner.locate("git") else { throw HTTPError(status: 500, reason: "git not found") }
        let inherited = ProcessInfo.processInfo.environment
        var environment: [String: String] = [
            "PATH": inherited["PATH"] ?? "/usr/local/bin:/usr/bin:/bin",
            "GIT_PROJECT_ROOT": root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": request.version.rawValue,
            "SERVER_SOFTWARE": "shoal",
            "REQUEST_METHOD": request.method.rawValue,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": request.headers[.contentType] ?? "",
            "CONTENT_LENGTH": String(body.count),
            "REMOTE_ADDR": request.remoteIPAddress ?? "",
            "HTTP_CONTENT_ENCODING": request.headers[HTTPHeader("Content-Encoding")] ?? "",
            "HTTP_GIT_PROTOCOL": request.headers[HTTPHeader("Git-Protocol")] ?? "",
            "GIT_CONFIG_NOSYSTEM": "1",
            // Receive-pack only for an authorized push; a push into a checked-out branch updates its work tree.
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": "http.receivepack",
            "GIT_CONFIG_VALUE_0": push ? "true" : "false",
            "GIT_CONFIG_KEY_1": "receive.denyCurrentBranch",
            "GIT_CONFIG_VALUE_1": "updateInstead",
        ]
        if push { environment["REMOTE_USER"] = "shoal" }
        if let home = inherited["HOME"] { environment["HOME"] = home }
        let timeout = limits.backendTimeout
        let settings = environment
        let result = try await withCheckedThrowingContinuation { continuation in
            // The backend blocks on pipes: a thread of its own keeps it off the concurrency pool.
            Thread.detachNewThread {
                continuation.resume(
                    with: Result {
                        try BinaryProcess.run(
                            git, ["http-backend"], environment: settings, input: body, timeout: timeout)
                    })
            }
        }
        guard !result.timedOut else { throw HTTPError(status: 500, reason: "git http-backend timed out") }
        guard !result.output.isEmpty else { throw HTTPError(status: 500, reason: "git http-backend failed") }
        return result.output
    }

    static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 413: "Content Too Large"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 505: "HTTP Version Not Supported"
        default: "Status \(status)"
        }
    }
}

/// The output of a CGI program: headers (a `Status` among them), a blank line, the body (RFC 3875 section 6).
/// FlyingFox has no CGI support, so this small part is shoal's own.
enum CGIResponse {
    static func parse(_ output: [UInt8]) -> (
        status: Int, reason: String, headers: [(String, String)], body: ArraySlice<UInt8>
    )? {
        var end: (headers: Int, body: Int)?
        var index = 0
        while index < output.count {
            if output[index] == 10 {
                if index + 1 < output.count && output[index + 1] == 10 {
                    end = (index, index + 2)
                    break
                }
                if index + 2 < output.count && output[index + 1] == 13 && output[index + 2] == 10 {
                    end = (index, index + 3)
                    break
                }
            }
            index += 1
        }
        guard let end else { return nil }
        var status = 200
        var reason = "OK"
        var headers: [(String, String)] = []
        // Split bytes, not Characters: "\r\n" is a single Character in Swift.
        for rawLine in output[..<end.headers].split(separator: 10) {
            let bytes = rawLine.last == 13 ? rawLine.dropLast() : rawLine[...]
            guard !bytes.contains(where: { $0 < 32 && $0 != 9 }) else { return nil }
            let line = String(decoding: bytes, as: UTF8.self)
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let name = String(line[..<colon])
            let value = line[line.index(after: colon)...].trimmingCharacters(in: [" ", "\t"])
            guard !name.isEmpty, name.unicodeScalars.allSatisfy(isTokenCharacter) else { return nil }
            if name.lowercased() == "status" {
                let pieces = value.split(separator: " ", maxSplits: 1)
                guard let first = pieces.first, let code = Int(first), (100...599).contains(code) else { return nil }
                status = code
                reason = pieces.count > 1 ? String(pieces[1]) : GitBackendHandler.reasonPhrase(code)
            } else {
                headers.append((name, value))
            }
        }
        return (status, reason, headers, output[end.body...])
    }

    private static func isTokenCharacter(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", "!", "#", "$", "%", "&", "'", "*", "+", "-", ".", "^", "_", "`", "|",
            "~":
            true
        default: false
        }
    }
}

/// FlyingFox's log lines, at debug level in swift-log (libraries log at debug).
struct FlyingFoxLogger: FlyingSocks.Logging {
    let logger: Logger

    func logDebug(_ debug: @autoclosure () -> String) { logger.debug("flyingfox", metadata: ["text": "\(debug())"]) }
    func logInfo(_ info: @autoclosure () -> String) { logger.debug("flyingfox", metadata: ["text": "\(info())"]) }
    func logWarning(_ warning: @autoclosure () -> String) {
        logger.debug("flyingfox", metadata: ["text": "\(warning())"])
    }
    func logError(_ error: @autoclosure () -> String) { logger.debug("flyingfox", metadata: ["text": "\(error())"]) }
    func logCritical(_ critical: @autoclosure () -> String) {
        logger.debug("flyingfox", metadata: ["text": "\(critical())"])
    }
}

/// Runs a program with binary standard input and output and a timeout. `ProcessRunner` carries output as text,
/// which would corrupt pack data; this small helper stays here until it offers bytes in and out.
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
        let seconds = Double(timeout.components.seconds)
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

/// `GitHTTPServer` as a long-running service: serves from `run()` until graceful shutdown (SIGTERM or SIGINT in
/// `shoal gitops serve`), then lets requests in progress finish for up to `grace`.
public struct GitHTTPService: Service {
    public let server: GitHTTPServer
    public var grace: Duration
    private let onListening: @Sendable (Int) -> Void

    /// - Parameters:
    ///   - server: the server to run.
    ///   - grace: how long requests in progress may take after shutdown was asked for.
    ///   - onListening: called once with the bound port.
    public init(server: GitHTTPServer, grace: Duration = .seconds(5), onListening: @escaping @Sendable (Int) -> Void) {
        self.server = server
        self.grace = grace
        self.onListening = onListening
    }

    public func run() async throws {
        let port = try await server.start()
        onListening(port)
        // Returns on graceful shutdown; throws when the task is cancelled, which stops the server just the same.
        try? await gracefulShutdown()
        await server.stop(grace: grace)
    }
}
