import Foundation
import ShoalSupport
import Testing

@testable import GitOps

#if canImport(Glibc)
    import Glibc
#endif

/// Sends raw bytes to 127.0.0.1:port and returns everything the server answers before closing. The blocking socket
/// calls run on a thread of their own: on the concurrency pool they would starve the server under test.
func rawExchange(port: Int, _ request: [UInt8], closeWrite: Bool = true) async throws -> String {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try blockingExchange(port: port, request, closeWrite: closeWrite) })
        }
    }
}

private func blockingExchange(port: Int, _ request: [UInt8], closeWrite: Bool) throws -> String {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ShoalError(.io, "socket") }
    defer { close(fd) }
    var timeout = timeval(tv_sec: 20, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else { throw ShoalError(.io, "connect") }
    _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    if closeWrite { shutdown(fd, Int32(SHUT_WR)) }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if count <= 0 { break }
        response.append(contentsOf: buffer[..<count])
    }
    return String(decoding: response, as: UTF8.self)
}

func statusLine(_ response: String) -> String {
    String(decoding: Array(response.utf8).prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
}

@Suite struct GitHTTPServerTests {
    static let token = "push-token-0123456789abcdef"

    /// A served root holding one committed GitOps repository at `gitops/lab`.
    func withServedRepository(
        pushToken: String? = nil, _ body: (GitHTTPServer, GitRepository, String, ProcessRunner) async throws -> Void
    ) async throws {
        guard Tools.available("git", install: "apt-get install -y git") else { return }
        let home = try makeTemporaryDirectory()
        defer { removeDirectory(home) }
        let runner = isolatedRunner(home: home)
        let repository = GitRepository(path: "\(home)/served/gitops/lab", runner: runner)
        try await repository.initialize()
        try repository.write(gitOpsFiles().files)
        _ = try await repository.commitAll(message: "Monitoring stack")
        let server = try GitHTTPServer(root: "\(home)/served", pushToken: pushToken)
        let port = try await server.start()
        #expect(port > 0)
        do {
            try await body(server, repository, home, runner)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    /// A clone of `url` with one more commit in it.
    func cloneWithCommit(_ url: String, into clone: String, runner: ProcessRunner, file: String = "extra.yaml")
        async throws
    {
        let cloned = try await runner.run("git", ["clone", "-q", url, clone], timeout: .seconds(60))
        try #require(cloned.succeeded, "\(cloned.standardError)")
        try SecureFile.write("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n", to: "\(clone)/\(file)")
        _ = try await runner.run("git", ["-C", clone, "add", "-A"])
        let committed = try await runner.run(
            "git", ["-C", clone, "-c", "user.name=x", "-c", "user.email=x@y", "commit", "-q", "-m", "extra"])
        try #require(committed.succeeded, "\(committed.standardError)")
    }

    /// git with HTTP Basic credentials in its environment.
    func withCredentials(_ password: String) -> [String: String] {
        let encoded = Data("shoal:\(password)".utf8).base64EncodedString()
        return [
            "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": "Authorization: Basic \(encoded)",
        ]
    }

    @Test func aRealGitCloneOfTheServedURLGetsHEADsManifests() async throws {
        try await withServedRepository { server, repository, home, runner in
            let url = try #require(server.url(repository: "gitops/lab"))
            #expect(url == "http://127.0.0.1:\(server.port!)/gitops/lab")
            for version in ["2", "0"] {
                let clone = "\(home)/clone-v\(version)"
                let result = try await runner.run(
                    "git", ["-c", "protocol.version=\(version)", "clone", "-q", url, clone], timeout: .seconds(60))
                #expect(result.succeeded, "clone: \(result.standardError)")
                let cloned = try await runner.run("git", ["-C", clone, "rev-parse", "HEAD"])
                #expect(
                    cloned.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
                        == (try await repository.head()))
                for file in gitOpsFiles().files {
                    let text = try String(contentsOfFile: "\(clone)/\(file.path)", encoding: .utf8)
                    #expect(text == file.contents, "\(file.path)")
                }
            }
            // A later commit reaches a fetch.
            try repository.write(
                MonitoringStack.render(MonitoringStackSpec(instance: "lab", headlamp: false)),
                removingOthersIn: ["monitoring"])
            let second = try await repository.commitAll(message: "No Headlamp")
            let pull = try await runner.run(
                "git", ["-C", "\(home)/clone-v2", "pull", "-q", "--ff-only"], timeout: .seconds(60))
            #expect(pull.succeeded, "\(pull.standardError)")
            #expect(!FileManager.default.fileExists(atPath: "\(home)/clone-v2/monitoring/25-headlamp.yaml"))
            let head = try await runner.run("git", ["-C", "\(home)/clone-v2", "rev-parse", "HEAD"])
            #expect(head.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) == second.sha)
        }
    }

    @Test func withoutATokenPushesAreRefused() async throws {
        try await withServedRepository { server, repository, home, runner in
            let url = try #require(server.url(repository: "gitops/lab"))
            let clone = "\(home)/clone"
            try await cloneWithCommit(url, into: clone, runner: runner, file: "evil.yaml")
            let push = try await runner.run(
                "git", ["-C", clone, "push", "-q", "origin", "HEAD:main"], environment: withCredentials(Self.token),
                timeout: .seconds(60))
            #expect(!push.succeeded)
            #expect(push.standardError.contains("403"), "\(push.standardError)")
            #expect(!FileManager.default.fileExists(atPath: "\(repository.path)/evil.yaml"))
            let log = try await repository.git(["rev-list", "--count", "HEAD"]).standardOutput
            #expect(log.trimmingCharacters(in: .whitespacesAndNewlines) == "1")
        }
    }

    @Test func aPushWithTheTokenUpdatesTheServedRepositoryAndAWrongOneIsRefused() async throws {
        try await withServedRepository(pushToken: Self.token) { server, repository, home, runner in
            let url = try #require(server.url(repository: "gitops/lab"))
            let clone = "\(home)/clone"
            try await cloneWithCommit(url, into: clone, runner: runner)
            let anonymous = try await runner.run(
                "git", ["-C", clone, "push", "-q", "origin", "HEAD:main"], timeout: .seconds(60))
            #expect(!anonymous.succeeded)
            let wrong = try await runner.run(
                "git", ["-C", clone, "push", "-q", "origin", "HEAD:main"],
                environment: withCredentials("not-the-token-0123456789"), timeout: .seconds(60))
            #expect(!wrong.succeeded)
            #expect(!FileManager.default.fileExists(atPath: "\(repository.path)/extra.yaml"))

            let pushed = try await runner.run(
                "git", ["-C", clone, "push", "-q", "origin", "HEAD:main"], environment: withCredentials(Self.token),
                timeout: .seconds(60))
            #expect(pushed.succeeded, "\(pushed.standardError)")
            let local = try await runner.run("git", ["-C", clone, "rev-parse", "HEAD"])
            #expect(try await repository.head() == local.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines))
            // The served work tree follows the push, so the host's copy is what the cluster syncs.
            #expect(FileManager.default.fileExists(atPath: "\(repository.path)/extra.yaml"))

            // A first push to a new `.git` path creates it; a clone then reads it back.
            let created = "http://127.0.0.1:\(server.port!)/shoal/new.git"
            let first = try await runner.run(
                "git", ["-C", clone, "push", "-q", created, "HEAD:refs/heads/main"],
                environment: withCredentials(Self.token), timeout: .seconds(60))
            #expect(first.succeeded, "\(first.standardError)")
            let back = try await runner.run("git", ["clone", "-q", created, "\(home)/back"], timeout: .seconds(60))
            #expect(back.succeeded, "\(back.standardError)")
            #expect(FileManager.default.fileExists(atPath: "\(home)/back/extra.yaml"))
            // Without credentials nothing is created.
            let refused = try await runner.run(
                "git", ["-C", clone, "push", "-q", "http://127.0.0.1:\(server.port!)/shoal/other.git", "HEAD:main"],
                timeout: .seconds(60))
            #expect(!refused.succeeded)
            #expect(!FileManager.default.fileExists(atPath: "\(home)/served/shoal/other.git"))
        }
    }

    @Test func aPushThroughGitRepositoryCarriesTheTokenOutsideItsArguments() async throws {
        try await withServedRepository(pushToken: Self.token) { server, _, home, runner in
            let source = GitRepository(path: "\(home)/source", runner: runner)
            try await source.initialize()
            try source.write([ManifestFile(path: "a.yaml", contents: "a: 1\n")])
            let commit = try await source.commitAll(message: "a")
            let url = "http://127.0.0.1:\(server.port!)/shoal/lab.git"
            try await source.push(to: url, user: "shoal", password: Self.token)
            let remote = try await runner.run("git", ["ls-remote", url, "main"])
            #expect(remote.standardOutput.hasPrefix(commit.sha))
            await #expect(throws: ShoalError.self) {
                try await source.push(to: url, user: "shoal", password: "wrong-password-0123456789")
            }
        }
    }

    @Test func badRequestsGetAnErrorOrAClosedConnectionAndTheServerKeepsServing() async throws {
        try await withServedRepository { server, _, _, _ in
            let port = try #require(server.port)
            let host = "Host: 127.0.0.1\r\n"
            let post = "POST /gitops/lab/git-upload-pack HTTP/1.1\r\n" + host
            let get = "GET /gitops/lab/info/refs?service="
            let longHeader = "GET / HTTP/1.1\r\n" + host + "X: " + String(repeating: "a", count: 20000) + "\r\n\r\n"
            let cases: [(String?, String)] = [
                // No Host header: refused even for a good path.
                ("400", get + "git-upload-pack HTTP/1.1\r\n\r\n"),
                ("400", get + "git-upload-pack HTTP/1.1\r\nHost: \r\n\r\n"),
                ("405", "DELETE /gitops/lab HTTP/1.1\r\n" + host + "\r\n"),
                ("404", "GET /../../etc/passwd HTTP/1.1\r\n" + host + "\r\n"),
                ("404", "GET /gitops/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\n" + host + "\r\n"),
                ("404", "GET /gitops/.git/config HTTP/1.1\r\n" + host + "\r\n"),
                ("404", "GET /gitops/missing/info/refs?service=git-upload-pack HTTP/1.1\r\n" + host + "\r\n"),
                ("400", get + "x;rm HTTP/1.1\r\n" + host + "\r\n"),
                ("403", get + "git-receive-pack HTTP/1.1\r\n" + host + "\r\n"),
                ("413", post + "Content-Length: 999999999\r\n\r\n"),
                ("431", longHeader),
                // Framing FlyingFox cannot read closes the connection (nil: no status line at all is fine too).
                (nil, "garbage\r\n\r\n"),
                (nil, post + "Content-Length: -5\r\n\r\n"),
                (nil, post + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
                (nil, post + "Content-Length: 100\r\n\r\nshort"),
                // A chunk size with spaces is never read as another size.
                (nil, post + "Transfer-Encoding: chunked\r\n\r\n1 0\r\n0014command=ls-refs\n0000\r\n0\r\n\r\n"),
                (nil, post + "Transfer-Encoding: chunked\r\n\r\nzz\r\n"),
            ]
            for (expected, text) in cases {
                let request = Array(text.utf8)
                let response = try await rawExchange(port: port, request)
                let line = statusLine(response)
                let shown = String(decoding: request.prefix(70), as: UTF8.self).debugDescription
                if let expected {
                    #expect(line.hasPrefix("HTTP/1.1 \(expected) "), "\(shown) -> \(line)")
                } else {
                    #expect(line.isEmpty || line.hasPrefix("HTTP/1.1 4"), "\(shown) -> \(line)")
                }
            }
            // Still serving a good request after all of that.
            let good = try await rawExchange(
                port: port,
                Array("GET /gitops/lab/info/refs?service=git-upload-pack HTTP/1.1\r\n\(host)\r\n".utf8))
            #expect(statusLine(good) == "HTTP/1.1 200 OK")
            #expect(good.contains("application/x-git-upload-pack-advertisement"))
            #expect(good.contains("refs/heads/main"))
        }
    }

    @Test func chunkedAndGzipRequestBodiesFromRealGitClientsWork() async throws {
        guard Tools.available("git", install: "apt-get install -y git") else { return }
        let home = try makeTemporaryDirectory()
        defer { removeDirectory(home) }
        let runner = isolatedRunner(home: home)
        // Many branch tips make a clone's request large: over 1 KiB git gzips it; over its post buffer (set to the
        // smallest allowed, 64 KiB) it is sent chunked.
        for (name, branches) in [("gzip", 60), ("chunked", 1800)] {
            let served = "\(home)/served/\(name)"
            _ = try await runner.run("git", ["init", "-q", "--bare", served])
            var stream = ""
            for index in 0..<branches {
                stream += "commit refs/heads/b\(index)\ncommitter shoal <shoal@localhost> 1700000000 +0000\ndata 2\nc\n"
                stream += "M 644 inline f\ndata \(String(index).utf8.count + 1)\n\(index)\n\n"
            }
            let imported = try await runner.run(
                "git", ["--git-dir", served, "fast-import", "--quiet"], input: Data(stream.utf8), timeout: .seconds(120)
            )
            try #require(imported.succeeded, "\(imported.standardError)")
        }
        let server = try GitHTTPServer(root: "\(home)/served")
        let port = try await server.start()
        let cases = [
            ("gzip", 60, "Content-Encoding: gzip", [String]()),
            ("chunked", 1800, "Transfer-Encoding: chunked", ["-c", "http.postBuffer=65520"]),
        ]
        for (name, branches, header, settings) in cases {
            let clone = "\(home)/clone-\(name)"
            let result = try await runner.run(
                "git",
                settings + [
                    "-c", "protocol.version=0", "clone", "-q", "--mirror", "http://127.0.0.1:\(port)/\(name)", clone,
                ],
                environment: ["GIT_TRACE_CURL": "1", "GIT_TRACE_CURL_NO_DATA": "1"], timeout: .seconds(120))
            #expect(result.succeeded, "\(name): \(result.standardErrorTail())")
            #expect(result.standardError.contains(header), "the clone did send a \(name) body")
            let refs = try await runner.run("git", ["--git-dir", clone, "for-each-ref", "--format=%(refname)"])
            #expect(refs.standardOutput.split(separator: "\n").count == branches)
        }
        await server.stop()
    }

    @Test func stopClosesTheListenerAndStartPicksAFreePortEachTime() async throws {
        guard Tools.available("git", install: "apt-get install -y git") else { return }
        let root = try makeTemporaryDirectory()
        defer { removeDirectory(root) }
        let first = try GitHTTPServer(root: root)
        let second = try GitHTTPServer(root: root)
        let a = try await first.start()
        let b = try await second.start()
        #expect(a != b)
        #expect(try await first.start() == a)
        await first.stop()
        #expect(first.port == nil)
        await #expect(throws: (any Error).self) {
            try await rawExchange(port: a, Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        }
        let missing = try await rawExchange(port: b, Array("GET /none/info/refs HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        #expect(statusLine(missing).contains("404"))
        await second.stop()
        await second.stop()
        #expect(GitHTTPServer.hostAddresses().allSatisfy { !$0.hasPrefix("127.") && $0.split(separator: ".").count == 4 })
        #expect(throws: ShoalError.self) { try GitHTTPServer(root: "\(root)/missing") }
        #expect(throws: ShoalError.self) { try GitHTTPServer(root: root, host: "not-an-ip") }
        #expect(throws: ShoalError.self) { try GitHTTPServer(root: root, pushToken: "short") }
        // A port in use is a clear error, not a hang.
        let third = try GitHTTPServer(root: root, port: b)
        let taken = try GitHTTPServer(root: root)
        let held = try await taken.start()
        let clash = try GitHTTPServer(root: root, port: held)
        await #expect(throws: ShoalError.self) { try await clash.start() }
        await taken.stop()
        _ = third
    }
}

@Suite struct CGIResponseTests {
    @Test func parsesCGIStatusAndHeaders() throws {
        let output = Array("Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nmissing".utf8)
        let response = try #require(CGIResponse.parse(output))
        #expect(response.status == 404 && response.reason == "Not Found")
        #expect(response.headers.map(\.0) == ["Content-Type"])
        #expect(String(decoding: response.body, as: UTF8.self) == "missing")
        let plain = try #require(CGIResponse.parse(Array("Content-Type: x\n\nbody".utf8)))
        #expect(plain.status == 200 && String(decoding: plain.body, as: UTF8.self) == "body")
        #expect(CGIResponse.parse(Array("no header end".utf8)) == nil)
        #expect(CGIResponse.parse(Array("Status: abc\r\n\r\n".utf8)) == nil)
    }
}

@Suite struct NetworkAddressTests {
    @Test(arguments: ["a;id", "host\nname", "bad host", "http://x", "a/b", "", "-x.example", "x..y", "[::1", "a:b"])
    func anAdvertisedAddressThatIsNoHostNameOrIPIsRefused(value: String) {
        #expect(throws: ShoalError.self) { try NetworkAddress.validatedAdvertise(value) }
    }

    @Test func hostNamesAndAddressesAreAccepted() throws {
        #expect(try NetworkAddress.validatedAdvertise("git.lab.example") == "git.lab.example")
        #expect(try NetworkAddress.validatedAdvertise("10.0.0.5") == "10.0.0.5")
        #expect(try NetworkAddress.validatedAdvertise("fd00::5") == "[fd00::5]")
        #expect(try NetworkAddress.validatedAdvertise("[fd00::5]") == "[fd00::5]")
        #expect(NetworkAddress.isLoopback("127.0.0.1") && NetworkAddress.isLoopback("[::1]"))
        #expect(!NetworkAddress.isLoopback("10.0.0.5"))
        let error = try #require(throws: ShoalError.self) { try NetworkAddress.validatedAdvertise("a\nb") }
        #expect(!error.message.contains("\n"))
    }
}
