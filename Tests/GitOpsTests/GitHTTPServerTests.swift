import Foundation
import ShoalSupport
import Testing

@testable import GitOps

#if canImport(Glibc)
    import Glibc
#endif

/// Sends raw bytes to 127.0.0.1:port and returns everything the server answers before closing.
func rawExchange(port: Int, _ request: [UInt8], closeWrite: Bool = true) throws -> String {
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
    /// A served root holding one committed GitOps repository at `gitops/lab`.
    func withServedRepository(_ body: (GitHTTPServer, GitRepository, String, ProcessRunner) async throws -> Void)
        async throws
    {
        guard Tools.available("git", install: "apt-get install -y git") else { return }
        let home = try makeTemporaryDirectory()
        defer { removeDirectory(home) }
        let runner = isolatedRunner(home: home)
        let repository = GitRepository(path: "\(home)/served/gitops/lab", runner: runner)
        try await repository.initialize()
        try repository.write(gitOpsFiles().files)
        _ = try await repository.commitAll(message: "Monitoring stack")
        let server = try GitHTTPServer(root: "\(home)/served")
        let port = try server.start()
        #expect(port > 0)
        defer { server.stop() }
        try await body(server, repository, home, runner)
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

    @Test func pushesAreRefused() async throws {
        try await withServedRepository { server, repository, home, runner in
            let url = try #require(server.url(repository: "gitops/lab"))
            let clone = "\(home)/clone"
            _ = try await runner.run("git", ["clone", "-q", url, clone], timeout: .seconds(60))
            try SecureFile.write("x", to: "\(clone)/evil.yaml")
            _ = try await runner.run("git", ["-C", clone, "add", "-A"])
            _ = try await runner.run(
                "git", ["-C", clone, "-c", "user.name=x", "-c", "user.email=x@y", "commit", "-q", "-m", "evil"])
            let push = try await runner.run(
                "git", ["-C", clone, "push", "-q", "origin", "HEAD:main"], timeout: .seconds(60))
            #expect(!push.succeeded)
            #expect(!FileManager.default.fileExists(atPath: "\(repository.path)/evil.yaml"))
            let log = try await repository.git(["rev-list", "--count", "HEAD"]).standardOutput
            #expect(log.trimmingCharacters(in: .whitespacesAndNewlines) == "1")
        }
    }

    @Test func badRequestsGetAnErrorStatusAndTheServerKeepsServing() async throws {
        try await withServedRepository { server, _, _, _ in
            let port = try #require(server.port)
            let cases: [(String, [UInt8])] = [
                ("400", Array("garbage\r\n\r\n".utf8)),
                ("400", Array("GET /gitops/lab/info/refs HTTP/1.1\r\nno colon here\r\n\r\n".utf8)),
                ("400", Array("GET relative HTTP/1.1\r\n\r\n".utf8)),
                ("400", [0x16, 0x03, 0x01, 0x00, 0xff, 0x0d, 0x0a, 0x0d, 0x0a]),
                ("505", Array("GET / HTTP/2.0\r\n\r\n".utf8)),
                ("405", Array("DELETE /gitops/lab HTTP/1.1\r\n\r\n".utf8)),
                ("404", Array("GET /../../etc/passwd HTTP/1.1\r\n\r\n".utf8)),
                ("404", Array("GET /gitops/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\n\r\n".utf8)),
                ("404", Array("GET /gitops/missing/info/refs?service=git-upload-pack HTTP/1.1\r\n\r\n".utf8)),
                ("400", Array("GET /gitops/lab/info/refs?service=x;rm HTTP/1.1\r\n\r\n".utf8)),
                ("400", Array("POST /gitops/lab/git-upload-pack HTTP/1.1\r\nContent-Length: -5\r\n\r\n".utf8)),
                (
                    "400",
                    Array(
                        ("POST /gitops/lab/git-upload-pack HTTP/1.1\r\nContent-Length: 5\r\n"
                            + "Transfer-Encoding: chunked\r\n\r\n").utf8)
                ),
                (
                    "413",
                    Array("POST /gitops/lab/git-upload-pack HTTP/1.1\r\nContent-Length: 999999999999\r\n\r\n".utf8)
                ),
                (
                    "400",
                    Array("POST /gitops/lab/git-upload-pack HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".utf8)
                ),
                ("501", Array("POST /gitops/lab/git-upload-pack HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n".utf8)),
                ("431", Array(("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 20000) + "\r\n\r\n").utf8)),
                // The client gives up half-way through the body.
                ("400", Array("POST /gitops/lab/git-upload-pack HTTP/1.1\r\nContent-Length: 100\r\n\r\nshort".utf8)),
                ("400", Array("GET /gitops/lab/info/refs HTTP/1.1\r\nHost: x".utf8)),
            ]
            for (expected, request) in cases {
                let response = try rawExchange(port: port, request)
                #expect(
                    statusLine(response).hasPrefix("HTTP/1.1 \(expected) "),
                    "\(String(decoding: request.prefix(60), as: UTF8.self).debugDescription) -> \(statusLine(response))"
                )
                #expect(response.contains("Connection: close"))
            }
            // Still serving a good request after all of that.
            let good = try rawExchange(
                port: port, Array("GET /gitops/lab/info/refs?service=git-upload-pack HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
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
        let port = try server.start()
        defer { server.stop() }
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
    }

    @Test func stopClosesTheListenerAndStartPicksAFreePortEachTime() async throws {
        guard Tools.available("git", install: "apt-get install -y git") else { return }
        let root = try makeTemporaryDirectory()
        defer { removeDirectory(root) }
        let first = try GitHTTPServer(root: root)
        let second = try GitHTTPServer(root: root)
        let a = try first.start()
        let b = try second.start()
        #expect(a != b)
        #expect(try first.start() == a)
        first.stop()
        #expect(first.port == nil)
        #expect(throws: (any Error).self) { try rawExchange(port: a, Array("GET / HTTP/1.1\r\n\r\n".utf8)) }
        #expect(
            statusLine(try rawExchange(port: b, Array("GET /none/info/refs HTTP/1.1\r\n\r\n".utf8))).contains("404"))
        second.stop()
        second.stop()
        // Dropping the last reference stops the server too.
        var dropped: GitHTTPServer? = try GitHTTPServer(root: root)
        let c = try #require(try dropped?.start())
        dropped = nil
        // Another test's server may take the freed port at once; retry briefly before judging.
        var refused = false
        for _ in 0..<20 where !refused {
            refused = (try? rawExchange(port: c, Array("GET / HTTP/1.1\r\n\r\n".utf8))) == nil
            if !refused { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(refused, "the dropped server no longer listens")
        #expect(GitHTTPServer.hostAddresses().allSatisfy { !$0.hasPrefix("127.") && $0.split(separator: ".").count == 4 })
        #expect(throws: ShoalError.self) { try GitHTTPServer(root: "\(root)/missing") }
        #expect(throws: ShoalError.self) { try GitHTTPServer(root: root, host: "not-an-ip").start() }
    }
}

@Suite struct HTTPParsingTests {
    @Test func decodesChunkedBodiesAcrossPartialInput() throws {
        let body = Array("4\r\nwant\r\n6;ext=1\r\n more!\r\n0\r\nTrailer: x\r\n\r\nNEXT".utf8)
        for cut in 0..<(body.count - 4) {
            #expect(try HTTPParsing.decodeChunked(body[..<cut], limit: 100) == nil, "cut at \(cut)")
        }
        let decoded = try #require(try HTTPParsing.decodeChunked(body[...], limit: 100))
        #expect(String(decoding: decoded.body, as: UTF8.self) == "want more!")
        #expect(decoded.consumed == body.count - 4)
        #expect(throws: HTTPError.self) { try HTTPParsing.decodeChunked(body[...], limit: 5) }
        #expect(throws: HTTPError.self) { try HTTPParsing.decodeChunked(Array("4\r\nwantXX".utf8)[...], limit: 100) }
        #expect(throws: HTTPError.self) { try HTTPParsing.decodeChunked(Array("fffffffff\r\n".utf8)[...], limit: 100) }
    }

    @Test func parsesCGIStatusAndHeaders() throws {
        let output = Array("Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nmissing".utf8)
        let response = try #require(HTTPParsing.parseCGIResponse(output))
        #expect(response.status == 404 && response.reason == "Not Found")
        #expect(response.headers.map(\.0) == ["Content-Type"])
        #expect(String(decoding: response.body, as: UTF8.self) == "missing")
        let plain = try #require(HTTPParsing.parseCGIResponse(Array("Content-Type: x\n\nbody".utf8)))
        #expect(plain.status == 200 && String(decoding: plain.body, as: UTF8.self) == "body")
        #expect(HTTPParsing.parseCGIResponse(Array("no header end".utf8)) == nil)
        #expect(HTTPParsing.parseCGIResponse(Array("Status: abc\r\n\r\n".utf8)) == nil)
    }
}
