import FoundationEssentials
import Logging
import ShoalCore

/// Wire constants of protocol v4 (v2: events carry what changed, `list`
/// replies leave steps out, steps carry `params` and `failures`; v3: step
/// assignments name artifacts by digest and agents `fetch` their bytes; v4:
/// `step`, `ack` and `confirm` may carry several steps, a result stands for
/// its ack; the coordinator answers heartbeats instead of sending its own, and
/// an agent holding no step heartbeats at the idle interval it was granted).
public enum WireFormat {
    public static let version = 4
    /// Bytes of an artifact one `fetch-reply` carries at most (256 KiB).
    public static let fetchChunkBytes = 256 << 10
    /// Largest artifact an assignment may name: what a result can carry inline (base64 makes 4 bytes of 3,
    /// under `maxMessageBytes` with room for the rest of the result).
    public static let maxArtifactBytes = 40 << 20
    /// Largest header frame accepted.
    public static let maxHeaderBytes = 4096
    /// Largest whole message accepted (ZMQ_MAXMSGSIZE is set to this per frame).
    public static let maxMessageBytes = 64 << 20
    /// Topic prefixes on the PUB socket. Each ends in '/', so no topic is a
    /// prefix of another by accident (`agent/v-1/` vs `agent/v-10/`).
    public static func agentTopic(_ agent: String) -> String { "agent/\(agent)/" }
    public static func roleTopic(_ role: Role) -> String { "role/\(role.rawValue)/" }
    public static func workflowTopic(_ workflow: String) -> String { "workflow/\(workflow)/" }
}

/// Why a frame was rejected; each reason is counted by the receiver.
public enum RejectReason: String, Sendable, CaseIterable, Codable {
    case frameCount = "frame-count"
    case oversized
    case malformedHeader = "malformed-header"
    case unsupportedVersion = "unsupported-version"
    case unknownType = "unknown-type"
    case invalidField = "invalid-field"
    case malformedBody = "malformed-body"
    case unexpectedType = "unexpected-type"
    case unknownAgent = "unknown-agent"
    case unknownWorkflow = "unknown-workflow"
    case unknownStep = "unknown-step"
    case notAssigned = "not-assigned"
    case invalidRequest = "invalid-request"
    /// The sender's CURVE key is not (or no longer) on the allow-list.
    case keyNotAllowed = "key-not-allowed"
    /// The agent id belongs to a peer with another CURVE key.
    case keyMismatch = "key-mismatch"
    /// A `fetch` names a digest the journal holds no artifact for (never produced, or its workflow was pruned).
    case unknownArtifact = "unknown-artifact"
    /// A `fetch` offset outside the artifact, or a `fetch-reply` that does not continue the fetch in progress.
    case invalidOffset = "invalid-offset"
    /// An artifact fetched whole does not match the digest its assignment gave (counted by agents).
    case digestMismatch = "digest-mismatch"
}

/// A frame that failed strict decoding.
public struct DecodeError: Error, CustomStringConvertible, Sendable {
    public var reason: RejectReason
    public var detail: String
    public init(_ reason: RejectReason, _ detail: String) {
        self.reason = reason
        self.detail = detail
    }
    public var description: String { "\(reason.rawValue): \(detail)" }
}

/// A decoded message: the header, and the body still as bytes until the
/// receiver knows which type to decode it as.
public struct Envelope: Sendable {
    public var header: Header
    public var body: [UInt8]
    public init(header: Header, body: [UInt8]) {
        self.header = header
        self.body = body
    }

    /// Decodes the body strictly.
    /// - Throws: `DecodeError(.malformedBody)`.
    public func decode<Body: Decodable>(_ type: Body.Type) throws(DecodeError) -> Body {
        try Codec.decodeBody(type, body)
    }
}

/// JSON encoding and strict decoding of frames.
public enum Codec {
    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    /// Encodes a message as frames `[topic?] [header] [body]`.
    public static func encode<Body: Encodable>(_ header: Header, _ body: Body, topic: String? = nil) -> [[UInt8]] {
        var frames: [[UInt8]] = []
        frames.reserveCapacity(3)
        if let topic { frames.append(Array(topic.utf8)) }
        frames.append(header.compactJSON)
        frames.append(body is Empty ? Empty.encoded : encodeJSON(body))
        return frames
    }

    /// Frames `[topic?] [header] [body]` around a body already encoded.
    public static func frames(_ header: Header, body: [UInt8], topic: String? = nil) -> [[UInt8]] {
        var frames: [[UInt8]] = []
        frames.reserveCapacity(3)
        if let topic { frames.append(Array(topic.utf8)) }
        frames.append(header.compactJSON)
        frames.append(body)
        return frames
    }

    static func encodeJSON<T: Encodable>(_ value: T) -> [UInt8] {
        do {
            return Array(try encoder.encode(value))
        } catch {
            preconditionFailure("wire types always encode: \(error)")
        }
    }

    /// Decodes `[header] [body]` (a ROUTER's identity frame or a topic
    /// already removed by the caller).
    /// - Throws: `DecodeError` naming why the frames were rejected.
    public static func decode(_ frames: ArraySlice<[UInt8]>) throws(DecodeError) -> Envelope {
        guard frames.count == 2 else {
            throw DecodeError(.frameCount, "expected 2 frames (header, body), got \(frames.count)")
        }
        let headerBytes = frames[frames.startIndex]
        let body = frames[frames.startIndex + 1]
        guard headerBytes.count <= WireFormat.maxHeaderBytes else {
            throw DecodeError(.oversized, "header of \(headerBytes.count) bytes exceeds \(WireFormat.maxHeaderBytes)")
        }
        guard body.count <= WireFormat.maxMessageBytes else {
            throw DecodeError(.oversized, "body of \(body.count) bytes exceeds \(WireFormat.maxMessageBytes)")
        }
        return Envelope(header: try decodeHeader(headerBytes), body: body)
    }

    private struct VersionProbe: Decodable { var v: Int }
    private struct TypeProbe: Decodable { var type: String }

    /// A header of this protocol version that passes `validate`.
    private static func supported(_ header: Header) throws(DecodeError) -> Header {
        guard header.v == WireFormat.version else {
            throw DecodeError(
                .unsupportedVersion,
                "protocol version \(header.v) is not supported; this peer speaks v\(WireFormat.version)")
        }
        try validate(header)
        return header
    }

    static func decodeHeader(_ bytes: [UInt8]) throws(DecodeError) -> Header {
        // shoal's own compact headers without a JSONDecoder; whatever that reader is unsure of goes the long way.
        if let header = FastHeader.parse(bytes) {
            return try supported(header)
        }
        let data = Data(bytes)
        let decoder = JSONDecoder()
        // One parse for a well-formed header; the probes below only name
        // what is wrong with one that is not, in the order of the rules.
        if let header = try? decoder.decode(Header.self, from: data) {
            return try supported(header)
        }
        guard let probe = try? decoder.decode(VersionProbe.self, from: data) else {
            throw DecodeError(.malformedHeader, "header is not a JSON object with an integer 'v'")
        }
        guard probe.v == WireFormat.version else {
            throw DecodeError(.unsupportedVersion, "protocol version \(probe.v) is not supported; this peer speaks v\(WireFormat.version)")
        }
        if let typeProbe = try? decoder.decode(TypeProbe.self, from: data), MessageType(rawValue: typeProbe.type) == nil {
            throw DecodeError(.unknownType, "unknown message type '\(typeProbe.type.prefix(40))'")
        }
        let header: Header
        do {
            header = try decoder.decode(Header.self, from: data)
        } catch {
            throw DecodeError(.malformedHeader, "header fields: \(describe(error))")
        }
        try validate(header)
        return header
    }

    private static func validate(_ header: Header) throws(DecodeError) {
        guard (1...64).contains(header.id.utf8.count) else { throw DecodeError(.invalidField, "id must be 1-64 bytes") }
        if let workflow = header.workflow, !Names.isDNSLabel(workflow) {
            throw DecodeError(.invalidField, "workflow id is not a DNS label")
        }
        if let step = header.step, !(1...100).contains(step.utf8.count) {
            throw DecodeError(.invalidField, "step name must be 1-100 bytes")
        }
        if let attempt = header.attempt, !(1...10_000).contains(attempt) {
            throw DecodeError(.invalidField, "attempt must be 1-10000")
        }
        if let sender = header.sender, !(1...64).contains(sender.utf8.count) {
            throw DecodeError(.invalidField, "sender must be 1-64 bytes")
        }
    }

    static func decodeBody<Body: Decodable>(_ type: Body.Type, _ bytes: [UInt8]) throws(DecodeError) -> Body {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch {
            throw DecodeError(.malformedBody, "\(Body.self): \(describe(error))")
        }
    }

    private static func describe(_ error: any Error) -> String {
        switch error as? DecodingError {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .keyNotFound(_, let context),
            .dataCorrupted(let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return (path.isEmpty ? "" : "\(path): ") + context.debugDescription
        default:
            return "\(error)"
        }
    }
}

extension WireFormat {
    /// shoal's own version, announced in hello.
    public static let softwareVersion = "0.1.0"
}

/// Counts rejected frames by reason and logs them without letting a flood of
/// bad frames become a flood of log lines: the first ten of each reason, then
/// every thousandth.
public struct RejectionCounter: Sendable {
    public private(set) var counts: [RejectReason: Int] = [:]

    public init() {}

    /// Counts `error`, logging it when due.
    public mutating func count(_ error: DecodeError, logger: Logger) {
        let count = (counts[error.reason] ?? 0) + 1
        counts[error.reason] = count
        if count <= 10 || count.isMultiple(of: 1000) {
            logger.warning(
                "rejected frame",
                metadata: ["reason": "\(error.reason.rawValue)", "detail": "\(error.detail)", "count": "\(count)"])
        }
    }

    /// The counts keyed by the reasons' wire names, as `stats` and heartbeats carry them.
    public var byName: [String: Int] {
        Dictionary(uniqueKeysWithValues: counts.map { ($0.key.rawValue, $0.value) })
    }
}
