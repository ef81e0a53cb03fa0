/// The start line and headers of an HTTP/1.x request.
struct HTTPRequestHead: Equatable {
    var method: String
    /// The decoded path, starting with `/`.
    var path: String
    /// The raw query, without `?`.
    var query: String
    var version: String
    var headers: [(name: String, value: String)]

    /// The first value of a header, by case-insensitive name.
    func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    static func == (lhs: HTTPRequestHead, rhs: HTTPRequestHead) -> Bool {
        lhs.method == rhs.method && lhs.path == rhs.path && lhs.query == rhs.query && lhs.version == rhs.version
            && lhs.headers.map(\.name) == rhs.headers.map(\.name)
            && lhs.headers.map(\.value) == rhs.headers.map(\.value)
    }
}

/// Why a request was refused, with the HTTP status to answer.
struct HTTPError: Error, Equatable {
    var status: Int
    var reason: String

    static func badRequest(_ reason: String) -> HTTPError { HTTPError(status: 400, reason: reason) }
}

/// Strict parsing of the small part of HTTP/1.1 that git clients use.
enum HTTPParsing {
    static let maxHeaderBytes = 16 * 1024
    static let maxHeaderCount = 64

    /// The offset just past the blank line ending the head, or nil when it has not arrived yet.
    static func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 0...(bytes.count - 4)
        where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
            return index + 4
        }
        return nil
    }

    /// Parses the request line and headers (the bytes before the blank line).
    /// - Throws: `HTTPError` with 400 for anything malformed, 505 for another HTTP version.
    static func parseHead(_ bytes: ArraySlice<UInt8>) throws -> HTTPRequestHead {
        guard bytes.count <= maxHeaderBytes else { throw HTTPError(status: 431, reason: "request head too large") }
        guard bytes.allSatisfy({ $0 == 13 || $0 == 10 || $0 == 9 || ($0 >= 32 && $0 < 127) }) else {
            throw HTTPError.badRequest("non-ASCII byte in request head")
        }
        // Lines end with CRLF; a bare CR or LF anywhere else is refused.
        var lines: [String] = []
        var start = bytes.startIndex
        var index = bytes.startIndex
        while index < bytes.endIndex {
            if bytes[index] == 13 {
                guard index + 1 < bytes.endIndex, bytes[index + 1] == 10 else {
                    throw HTTPError.badRequest("bare carriage return in request head")
                }
                lines.append(String(decoding: bytes[start..<index], as: UTF8.self))
                index += 2
                start = index
            } else if bytes[index] == 10 {
                throw HTTPError.badRequest("bare line feed in request head")
            } else {
                index += 1
            }
        }
        if start < bytes.endIndex { lines.append(String(decoding: bytes[start...], as: UTF8.self)) }
        while lines.last == "" { lines.removeLast() }
        guard let requestLine = lines.first else { throw HTTPError.badRequest("missing request line") }
        let parts = requestLine.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[0].allSatisfy({ $0.isUppercase && $0.isASCII }) else {
            throw HTTPError.badRequest("malformed request line")
        }
        let version = String(parts[2])
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else {
            throw HTTPError(status: version.hasPrefix("HTTP/") ? 505 : 400, reason: "unsupported HTTP version")
        }
        let target = parts[1]
        guard target.hasPrefix("/") else { throw HTTPError.badRequest("request target is not an absolute path") }
        let rawPath: Substring
        let query: Substring
        if let mark = target.firstIndex(of: "?") {
            rawPath = target[..<mark]
            query = target[target.index(after: mark)...]
        } else {
            rawPath = target
            query = ""
        }
        guard let path = percentDecode(rawPath) else { throw HTTPError.badRequest("bad percent-encoding in path") }

        var headers: [(name: String, value: String)] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { throw HTTPError.badRequest("header without colon") }
            let name = line[..<colon]
            guard !name.isEmpty, name.allSatisfy(isTokenCharacter) else {
                throw HTTPError.badRequest("malformed header name")
            }
            let value = line[line.index(after: colon)...].trimmingCharacters(in: [" ", "\t"])
            headers.append((String(name), value))
            guard headers.count <= maxHeaderCount else { throw HTTPError(status: 431, reason: "too many headers") }
        }
        return HTTPRequestHead(
            method: String(parts[0]), path: path, query: String(query), version: version, headers: headers)
    }

    /// The body framing a request announces.
    enum Framing: Equatable {
        case none
        case length(Int)
        case chunked
    }

    /// - Throws: `HTTPError` for conflicting, malformed or too large framing headers.
    static func framing(of head: HTTPRequestHead, maxBody: Int) throws -> Framing {
        let lengths = head.headers.filter { $0.name.lowercased() == "content-length" }.map(\.value)
        let encodings = head.headers.filter { $0.name.lowercased() == "transfer-encoding" }.map(\.value)
        if !encodings.isEmpty {
            guard lengths.isEmpty else { throw HTTPError.badRequest("both Content-Length and Transfer-Encoding") }
            guard encodings.count == 1, encodings[0].lowercased() == "chunked" else {
                throw HTTPError(status: 501, reason: "unsupported transfer encoding")
            }
            return .chunked
        }
        guard !lengths.isEmpty else { return .none }
        guard Set(lengths).count == 1, let text = lengths.first, !text.isEmpty, text.count <= 12,
            text.allSatisfy({ $0.isASCII && $0.isNumber }), let length = Int(text)
        else {
            throw HTTPError.badRequest("malformed Content-Length")
        }
        guard length <= maxBody else { throw HTTPError(status: 413, reason: "request body too large") }
        return .length(length)
    }

    /// Decodes a complete chunked body from the start of `bytes`.
    /// - Returns: the body and how many bytes it took (trailers included), or nil when more bytes are needed.
    /// - Throws: `HTTPError` for malformed chunks or a body over `limit`.
    static func decodeChunked(_ bytes: ArraySlice<UInt8>, limit: Int) throws -> (body: [UInt8], consumed: Int)? {
        var body: [UInt8] = []
        var index = bytes.startIndex
        func line() throws -> ArraySlice<UInt8>? {
            var cursor = index
            while cursor + 1 < bytes.endIndex {
                if bytes[cursor] == 13 && bytes[cursor + 1] == 10 {
                    let found = bytes[index..<cursor]
                    index = cursor + 2
                    return found
                }
                cursor += 1
            }
            guard bytes.endIndex - index <= 4096 else { throw HTTPError.badRequest("chunk line too long") }
            return nil
        }
        while true {
            guard let sizeLine = try line() else { return nil }
            // Chunk extensions (";name=value") are allowed and ignored.
            let sizeText = sizeLine.prefix { $0 != 59 }.filter { $0 != 32 && $0 != 9 }
            guard !sizeText.isEmpty, sizeText.count <= 8 else { throw HTTPError.badRequest("malformed chunk size") }
            var size = 0
            for byte in sizeText {
                guard let digit = hexValue(byte) else { throw HTTPError.badRequest("malformed chunk size") }
                size = size * 16 + digit
            }
            if size == 0 {
                // Trailer fields until an empty line.
                while true {
                    guard let trailer = try line() else { return nil }
                    if trailer.isEmpty { return (body, index - bytes.startIndex) }
                }
            }
            guard body.count + size <= limit else { throw HTTPError(status: 413, reason: "request body too large") }
            guard bytes.endIndex - index >= size + 2 else { return nil }
            body.append(contentsOf: bytes[index..<(index + size)])
            index += size
            guard bytes[index] == 13 && bytes[index + 1] == 10 else {
                throw HTTPError.badRequest("chunk not followed by CRLF")
            }
            index += 2
        }
    }

    /// Splits a CGI response into status, headers and body. Headers end at the first empty line (CRLF or LF).
    static func parseCGIResponse(_ output: [UInt8]) -> (
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
            guard !name.isEmpty, name.allSatisfy(isTokenCharacter) else { return nil }
            if name.lowercased() == "status" {
                let pieces = value.split(separator: " ", maxSplits: 1)
                guard let first = pieces.first, let code = Int(first), (100...599).contains(code) else { return nil }
                status = code
                reason = pieces.count > 1 ? String(pieces[1]) : reasonPhrase(code)
            } else {
                headers.append((name, value))
            }
        }
        return (status, reason, headers, output[end.body...])
    }

    static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 100: "Continue"
        case 200: "OK"
        case 400: "Bad Request"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 413: "Content Too Large"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 503: "Service Unavailable"
        case 505: "HTTP Version Not Supported"
        default: "Status \(status)"
        }
    }

    private static func percentDecode(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == 37 {
                guard let high = iterator.popFirst().flatMap(hexValue), let low = iterator.popFirst().flatMap(hexValue)
                else { return nil }
                bytes.append(UInt8(high * 16 + low))
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case 48...57: Int(byte - 48)
        case 65...70: Int(byte - 55)
        case 97...102: Int(byte - 87)
        default: nil
        }
    }

    private static func isTokenCharacter(_ character: Character) -> Bool {
        guard character.isASCII, let value = character.asciiValue, value > 32, value < 127 else { return false }
        return !"()<>@,;:\\\"/[]?={}".contains(character)
    }
}
