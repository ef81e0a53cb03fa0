import FoundationEssentials

/// A quick reader for the JSON bodies on a step's path (results, assignments, step batches), without a
/// `JSONDecoder`. It reads standard JSON but only the part of it it is sure of: integers of up to 18 digits (no
/// fractions or exponents), strings of valid UTF-8 and well-formed escapes, objects without a repeated key, at
/// most 64 levels deep. Anything else returns nil, and the caller decodes with `JSONDecoder`, which accepts or
/// rejects it as before: for what this reader accepts, both give the same value (tests compare them).
public enum JSONReader {
    /// The value of a whole document; nil when it is not JSON this reader is sure of.
    public static func parse(_ bytes: ArraySlice<UInt8>) -> JSONValue? {
        bytes.withUnsafeBufferPointer { buffer in
            var parser = Parser(buffer)
            parser.skipWhitespace()
            guard let value = parser.value(depth: 0) else { return nil }
            parser.skipWhitespace()
            return parser.atEnd ? value : nil
        }
    }

    public static func parse(_ bytes: [UInt8]) -> JSONValue? { parse(bytes[...]) }

    /// The members of a document that is one object, each as the byte range of its value (indices of `bytes`),
    /// so that a caller may decode one member its own way or keep its bytes; nil as for `parse`.
    public static func members(_ bytes: [UInt8]) -> [String: Range<Int>]? {
        bytes.withUnsafeBufferPointer { buffer in
            var parser = Parser(buffer)
            var members: [String: Range<Int>] = [:]
            parser.skipWhitespace()
            let read = parser.object { key, parser in
                let start = parser.index
                guard parser.value(depth: 1) != nil, members[key] == nil else { return false }
                members[key] = start..<parser.index
                return true
            }
            guard read else { return nil }
            parser.skipWhitespace()
            return parser.atEnd ? members : nil
        }
    }

    /// The deepest nesting read; deeper documents go to `JSONDecoder`.
    static let maxDepth = 64

    private struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0

        init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        var atEnd: Bool { index == bytes.count }

        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        mutating func take(_ byte: UInt8) -> Bool {
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }

        mutating func literal(_ text: StaticString) -> Bool {
            let count = text.utf8CodeUnitCount
            guard bytes.count - index >= count else { return false }
            for offset in 0..<count where bytes[index + offset] != text.utf8Start[offset] { return false }
            index += count
            return true
        }

        mutating func value(depth: Int) -> JSONValue? {
            guard depth <= JSONReader.maxDepth, index < bytes.count else { return nil }
            switch bytes[index] {
            case UInt8(ascii: "\""):
                return string().map(JSONValue.string)
            case UInt8(ascii: "{"):
                var members: [String: JSONValue] = [:]
                let read = object { key, parser in
                    // A repeated key is left to JSONDecoder, whichever of them it keeps.
                    guard let member = parser.value(depth: depth + 1) else { return false }
                    return members.updateValue(member, forKey: key) == nil
                }
                return read ? .object(members) : nil
            case UInt8(ascii: "["):
                index += 1
                var elements: [JSONValue] = []
                skipWhitespace()
                if take(UInt8(ascii: "]")) { return .array(elements) }
                repeat {
                    skipWhitespace()
                    guard let element = value(depth: depth + 1) else { return nil }
                    elements.append(element)
                    skipWhitespace()
                } while take(UInt8(ascii: ","))
                return take(UInt8(ascii: "]")) ? .array(elements) : nil
            case UInt8(ascii: "t"):
                return literal("true") ? .bool(true) : nil
            case UInt8(ascii: "f"):
                return literal("false") ? .bool(false) : nil
            case UInt8(ascii: "n"):
                return literal("null") ? .null : nil
            default:
                return integer()
            }
        }

        /// An object at `index`, read up to its closing brace: `member` is given each member's key, with the
        /// parser at the member's value, which it reads; false when either is not as this reader expects.
        mutating func object(_ member: (String, inout Parser) -> Bool) -> Bool {
            guard take(UInt8(ascii: "{")) else { return false }
            skipWhitespace()
            if take(UInt8(ascii: "}")) { return true }
            repeat {
                skipWhitespace()
                guard let key = string() else { return false }
                skipWhitespace()
                guard take(UInt8(ascii: ":")) else { return false }
                skipWhitespace()
                guard member(key, &self) else { return false }
                skipWhitespace()
            } while take(UInt8(ascii: ","))
            return take(UInt8(ascii: "}"))
        }

        /// `-?(0|[1-9][0-9]*)` of at most 18 digits, not followed by a fraction or an exponent.
        mutating func integer() -> JSONValue? {
            var j = index
            let negative = j < bytes.count && bytes[j] == UInt8(ascii: "-")
            if negative { j += 1 }
            let digitsStart = j
            var value = 0
            while j < bytes.count, bytes[j] >= UInt8(ascii: "0"), bytes[j] <= UInt8(ascii: "9") {
                guard j - digitsStart < 18 else { return nil }
                value = value * 10 + Int(bytes[j] - UInt8(ascii: "0"))
                j += 1
            }
            let digits = j - digitsStart
            guard digits >= 1, !(digits > 1 && bytes[digitsStart] == UInt8(ascii: "0")) else { return nil }
            if j < bytes.count {
                switch bytes[j] {
                case UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"): return nil
                default: break
                }
            }
            index = j
            return .integer(negative ? -value : value)
        }

        /// A string at `index`: ASCII without escapes is taken as it is; anything else is unescaped and must be
        /// valid UTF-8 (a lone surrogate escape is not).
        mutating func string() -> String? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            let start = index
            while index < bytes.count {
                let c = bytes[index]
                if c == UInt8(ascii: "\"") {
                    let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                    index += 1
                    return text
                }
                if c == UInt8(ascii: "\\") || c >= 0x80 { return slowString(from: start) }
                if c < 0x20 { return nil }
                index += 1
            }
            return nil
        }

        private mutating func slowString(from start: Int) -> String? {
            var unescaped: [UInt8] = Array(bytes[start..<index])
            while index < bytes.count {
                let c = bytes[index]
                index += 1
                switch c {
                case UInt8(ascii: "\""):
                    return String(validating: unescaped, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard index < bytes.count else { return nil }
                    let escape = bytes[index]
                    index += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): unescaped.append(escape)
                    case UInt8(ascii: "b"): unescaped.append(0x08)
                    case UInt8(ascii: "f"): unescaped.append(0x0C)
                    case UInt8(ascii: "n"): unescaped.append(0x0A)
                    case UInt8(ascii: "r"): unescaped.append(0x0D)
                    case UInt8(ascii: "t"): unescaped.append(0x09)
                    case UInt8(ascii: "u"):
                        guard let scalar = unicodeEscape() else { return nil }
                        unescaped.append(contentsOf: Array(String(Character(scalar)).utf8))
                    default: return nil
                    }
                case 0..<0x20:
                    return nil
                default:
                    unescaped.append(c)
                }
            }
            return nil
        }

        /// The scalar of `XXXX` after `\u` (a surrogate pair as two escapes).
        private mutating func unicodeEscape() -> Unicode.Scalar? {
            guard let first = hex4() else { return nil }
            if (0xD800..<0xDC00).contains(first) {
                guard literal("\\u"), let second = hex4(), (0xDC00..<0xE000).contains(second) else { return nil }
                return Unicode.Scalar(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))
            }
            return Unicode.Scalar(first)
        }

        private mutating func hex4() -> UInt32? {
            guard bytes.count - index >= 4 else { return nil }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[index]
                let digit: UInt8
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = c - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = c - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = c - UInt8(ascii: "A") + 10
                default: return nil
                }
                value = value << 4 | UInt32(digit)
                index += 1
            }
            return value
        }
    }
}

/// Reading a typed body out of a `JSONValue` the way its synthesized `Decodable` conformance would: a missing
/// required member, a member of another kind, or a number out of its type's range is `Unsure`, and the caller
/// decodes with `JSONDecoder` instead, which then names what is wrong.
struct Unsure: Error {}

struct JSONMembers {
    let members: [String: JSONValue]

    init(_ value: JSONValue?) throws(Unsure) {
        guard case .object(let members) = value else { throw Unsure() }
        self.members = members
    }

    subscript(key: String) -> JSONValue? { members[key] }

    func string(_ key: String) throws(Unsure) -> String {
        guard case .string(let text) = members[key] else { throw Unsure() }
        return text
    }

    /// A member that may be missing or null.
    func optionalString(_ key: String) throws(Unsure) -> String? {
        switch members[key] {
        case nil, .null: return nil
        case .string(let text): return text
        default: throw Unsure()
        }
    }

    func int(_ key: String) throws(Unsure) -> Int {
        guard case .integer(let number) = members[key] else { throw Unsure() }
        return number
    }

    func int64(_ key: String) throws(Unsure) -> Int64 { Int64(try int(key)) }

    func int32(_ key: String) throws(Unsure) -> Int32 {
        guard let number = Int32(exactly: try int(key)) else { throw Unsure() }
        return number
    }

    func bool(_ key: String) throws(Unsure) -> Bool {
        guard case .bool(let value) = members[key] else { throw Unsure() }
        return value
    }

    func raw<T: RawRepresentable<String>>(_ key: String, as type: T.Type) throws(Unsure) -> T {
        guard let value = T(rawValue: try string(key)) else { throw Unsure() }
        return value
    }

    func object(_ key: String) throws(Unsure) -> [String: JSONValue] {
        guard case .object(let members) = members[key] else { throw Unsure() }
        return members
    }

    func array(_ key: String) throws(Unsure) -> [JSONValue] {
        guard case .array(let elements) = members[key] else { throw Unsure() }
        return elements
    }

    /// An object whose members are all objects (`inputs`).
    func objects(_ key: String) throws(Unsure) -> [String: [String: JSONValue]] {
        var result: [String: [String: JSONValue]] = [:]
        for (name, value) in try object(key) {
            guard case .object(let members) = value else { throw Unsure() }
            result[name] = members
        }
        return result
    }

    func strings(_ key: String) throws(Unsure) -> [String] {
        try array(key).map { value throws(Unsure) in
            guard case .string(let text) = value else { throw Unsure() }
            return text
        }
    }
}

extension ArtifactRef {
    init(reading value: JSONValue) throws(Unsure) {
        let m = try JSONMembers(value)
        self.init(
            name: try m.string("name"), path: try m.optionalString("path"), mode: try m.int("mode"),
            sensitive: try m.bool("sensitive"), size: try m.int("size"), digest: try m.string("digest"))
    }
}

extension Artifact {
    init(reading value: JSONValue) throws(Unsure) {
        let m = try JSONMembers(value)
        // `JSONDecoder` reads base64 with the same call.
        guard let data = Data(base64Encoded: try m.string("data")) else { throw Unsure() }
        self.init(name: try m.string("name"), path: try m.optionalString("path"), data: data)
        // As decoded: the mode as it came, whatever `sensitive` says (the initializer would force 0600).
        mode = try m.int("mode")
        sensitive = try m.bool("sensitive")
    }
}

extension StepOutput {
    init(reading value: JSONValue) throws(Unsure) {
        let m = try JSONMembers(value)
        self.init(
            summary: try m.string("summary"), values: try m.object("values"),
            artifacts: try m.array("artifacts").map { value throws(Unsure) in try Artifact(reading: value) },
            log: try m.strings("log"))
    }
}

extension StepResult {
    /// A result read without `JSONDecoder`; nil when the quick reader is unsure (see `JSONReader`).
    static func quick(_ body: [UInt8]) -> StepResult? {
        guard let value = JSONReader.parse(body) else { return nil }
        do throws(Unsure) {
            let m = try JSONMembers(value)
            return StepResult(
                outcome: try m.raw("outcome", as: StepOutcome.self), output: try StepOutput(reading: m["output"] ?? .null),
                error: try m.optionalString("error"), agent: try m.string("agent"), host: try m.string("host"),
                pid: try m.int32("pid"), startedAt: try m.int64("startedAt"), finishedAt: try m.int64("finishedAt"))
        } catch {
            return nil
        }
    }

    /// Decodes a result strictly: the quick reader for what it is sure of, `JSONDecoder` for the rest.
    /// - Throws: `DecodeError(.malformedBody)`.
    public static func decode(_ body: [UInt8]) throws(DecodeError) -> StepResult {
        if let result = quick(body) { return result }
        return try Codec.decodeBody(StepResult.self, body)
    }
}

/// The last workflow request an agent decoded, by its bytes: the steps of one workflow all carry the same
/// request, which is then decoded once rather than per step.
public struct RequestCache: Sendable {
    private var bytes: [UInt8] = []
    private var request: WorkflowRequest?

    public init() {}

    /// The request these bytes encode; nil when they are not the cached ones and `JSONDecoder` rejects them.
    mutating func request(_ raw: ArraySlice<UInt8>) -> WorkflowRequest? {
        if let request, bytes.elementsEqual(raw) { return request }
        guard let decoded = try? Codec.decodeBody(WorkflowRequest.self, Array(raw)) else { return nil }
        bytes = Array(raw)
        request = decoded
        return decoded
    }
}

extension StepBatch.Entry {
    init(reading value: JSONValue) throws(Unsure) {
        let m = try JSONMembers(value)
        self.init(
            step: try m.string("step"), attempt: try m.int("attempt"), role: try m.raw("role", as: Role.self),
            params: try m.object("params"), inputs: try m.objects("inputs"),
            artifacts: try m.array("artifacts").map { value throws(Unsure) in try ArtifactRef(reading: value) })
    }
}

extension StepBatch {
    /// A batch read without `JSONDecoder` (its request from `requests` when it is the last one decoded); nil
    /// when the quick reader is unsure.
    static func quick(_ body: [UInt8], requests: inout RequestCache) -> StepBatch? {
        guard let members = JSONReader.members(body), let requestRange = members["request"],
            let stepsRange = members["steps"], let steps = JSONReader.parse(body[stepsRange]),
            let request = requests.request(body[requestRange])
        else { return nil }
        do throws(Unsure) {
            guard case .array(let entries) = steps else { throw Unsure() }
            return StepBatch(
                request: request, steps: try entries.map { value throws(Unsure) in try Entry(reading: value) })
        } catch {
            return nil
        }
    }
}

extension StepAssignment {
    /// An assignment read without `JSONDecoder`, as `StepBatch.quick`.
    static func quick(_ body: [UInt8], requests: inout RequestCache) -> StepAssignment? {
        guard let members = JSONReader.members(body), let requestRange = members["request"] else { return nil }
        var rest: [String: JSONValue] = [:]
        for (name, range) in members where name != "request" {
            guard let value = JSONReader.parse(body[range]) else { return nil }
            rest[name] = value
        }
        guard let request = requests.request(body[requestRange]) else { return nil }
        do throws(Unsure) {
            let m = try JSONMembers(.object(rest))
            return StepAssignment(
                role: try m.raw("role", as: Role.self), request: request, params: try m.object("params"),
                inputs: try m.objects("inputs"),
                artifacts: try m.array("artifacts").map { value throws(Unsure) in try ArtifactRef(reading: value) })
        } catch {
            return nil
        }
    }

    /// Decodes an assignment strictly: the quick reader for what it is sure of, `JSONDecoder` for the rest.
    /// - Throws: `DecodeError(.malformedBody)`.
    public static func decode(_ body: [UInt8], requests: inout RequestCache) throws(DecodeError) -> StepAssignment {
        if let assignment = quick(body, requests: &requests) { return assignment }
        return try Codec.decodeBody(StepAssignment.self, body)
    }
}

extension StepKey {
    init(reading value: JSONValue) throws(Unsure) {
        let m = try JSONMembers(value)
        self.init(workflow: try m.string("workflow"), step: try m.string("step"), attempt: try m.int("attempt"))
    }
}

extension KeyList {
    /// A key list read without `JSONDecoder`; nil when the quick reader is unsure.
    static func quick(_ body: [UInt8]) -> KeyList? {
        guard let value = JSONReader.parse(body) else { return nil }
        do throws(Unsure) {
            let m = try JSONMembers(value)
            return KeyList(keys: try m.array("keys").map { value throws(Unsure) in try StepKey(reading: value) })
        } catch {
            return nil
        }
    }
}

extension Heartbeat {
    /// A heartbeat read without `JSONDecoder`; nil when the quick reader is unsure.
    static func quick(_ body: [UInt8]) -> Heartbeat? {
        guard let value = JSONReader.parse(body) else { return nil }
        do throws(Unsure) {
            let m = try JSONMembers(value)
            var rejected: [String: Int]?
            switch m["rejected"] {
            case nil, .null: rejected = nil
            case .object(let counts):
                var numbers: [String: Int] = [:]
                for (reason, count) in counts {
                    guard case .integer(let number) = count else { throw Unsure() }
                    numbers[reason] = number
                }
                rejected = numbers
            default: throw Unsure()
            }
            return Heartbeat(
                inFlight: try m.array("inFlight").map { value throws(Unsure) in try StepKey(reading: value) },
                rejected: rejected)
        } catch {
            return nil
        }
    }
}

extension PlannedStep {
    init(reading value: JSONValue) throws(Unsure) {
        let m = try JSONMembers(value)
        self.init(
            name: try m.string("name"), role: try m.raw("role", as: Role.self), needs: try m.strings("needs"),
            critical: try m.bool("critical"), params: try m.object("params"))
    }
}

extension Plan {
    /// A plan read from its JSON value the way its `Decodable` conformance reads it; nil when unsure.
    static func quick(_ value: JSONValue) -> Plan? {
        do throws(Unsure) {
            let m = try JSONMembers(value)
            return Plan(steps: try m.array("steps").map { value throws(Unsure) in try PlannedStep(reading: value) })
        } catch {
            return nil
        }
    }
}
