import FoundationEssentials
import Synchronization

/// A JSON writer for the frames and journal rows written once per step (headers, step snapshots, confirms):
/// the bytes `JSONEncoder` writes for the same value (strings escaped as it escapes them, `/` as `\/`), without
/// its per-call containers and boxing. Anything `JSONDecoder` reads back gives the value written.
public struct CompactJSON {
    public private(set) var bytes: [UInt8] = []
    private var needsComma = false

    /// `{}`: the body of a message whose header says it all (`Empty`).
    public static let emptyObject: [UInt8] = [UInt8(ascii: "{"), UInt8(ascii: "}")]

    public init(capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    public mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
    }

    public mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    public mutating func beginArray() {
        separate()
        bytes.append(UInt8(ascii: "["))
        needsComma = false
    }

    public mutating func endArray() {
        bytes.append(UInt8(ascii: "]"))
        needsComma = true
    }

    /// A member's key; its value follows.
    public mutating func key(_ name: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    /// A member's key given at run time (a dictionary's), escaped like any string.
    public mutating func key(_ name: String) {
        string(name)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    public mutating func string(_ value: String) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { utf8 in
            var start = 0
            for index in 0..<utf8.count {
                let c = utf8[index]
                guard c < 0x20 || c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") || c == UInt8(ascii: "/") else {
                    continue
                }
                if start < index { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<index])) }
                start = index + 1
                bytes.append(UInt8(ascii: "\\"))
                switch c {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): bytes.append(c)
                case 0x08: bytes.append(UInt8(ascii: "b"))
                case 0x0C: bytes.append(UInt8(ascii: "f"))
                case 0x0A: bytes.append(UInt8(ascii: "n"))
                case 0x0D: bytes.append(UInt8(ascii: "r"))
                case 0x09: bytes.append(UInt8(ascii: "t"))
                default:
                    let hex = Array("0123456789abcdef".utf8)
                    bytes.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                    bytes.append(hex[Int(c >> 4)])
                    bytes.append(hex[Int(c & 0xF)])
                }
            }
            if start < utf8.count { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start...])) }
        }
        bytes.append(UInt8(ascii: "\""))
        needsComma = true
    }

    public mutating func integer<T: BinaryInteger>(_ value: T) {
        separate()
        // The digits are appended last first, then put in order: no buffer to allocate for each number.
        let start = bytes.count
        var magnitude = value.magnitude
        repeat {
            bytes.append(UInt8(ascii: "0") + UInt8(truncatingIfNeeded: magnitude % 10))
            magnitude /= 10
        } while magnitude > 0
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        bytes[start...].reverse()
        needsComma = true
    }

    public mutating func bool(_ value: Bool) {
        literal(value ? "true" : "false")
    }

    public mutating func null() {
        literal("null")
    }

    private mutating func literal(_ text: StaticString) {
        separate()
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
        needsComma = true
    }

    /// Bytes that are already one JSON value.
    public mutating func raw(_ value: [UInt8]) {
        separate()
        bytes.append(contentsOf: value)
        needsComma = true
    }

    public mutating func value(_ value: JSONValue) {
        switch value {
        case .null: null()
        case .bool(let flag): bool(flag)
        case .integer(let number): integer(number)
        case .number(let number):
            if let exact = Int(exactly: number) {
                integer(exact)
            } else if number.isFinite {
                separate()
                bytes.append(contentsOf: Array("\(number)".utf8))
                needsComma = true
            } else {
                // JSON has no infinities nor NaN (JSONEncoder refuses them): written as null.
                null()
            }
        case .string(let text): string(text)
        case .array(let elements):
            beginArray()
            for element in elements { self.value(element) }
            endArray()
        case .object(let members):
            object(members)
        }
    }

    /// An object of JSON values, keys in sorted order (one order for the same value).
    public mutating func object(_ members: [String: JSONValue]) {
        beginObject()
        if members.count == 1, let (name, member) = members.first {
            key(name)
            value(member)
        } else {
            for name in members.keys.sorted() {
                key(name)
                value(members[name]!)
            }
        }
        endObject()
    }

    // MARK: Members
    //
    // `JSONEncoder` leaves a nil optional out: a member whose value is nil is not written.

    /// `"name":value`, left out when `value` is nil.
    public mutating func member(_ name: StaticString, ifPresent value: String?) {
        guard let value else { return }
        key(name)
        string(value)
    }

    /// `"name":value`, left out when `value` is nil.
    public mutating func member<T: BinaryInteger>(_ name: StaticString, ifPresent value: T?) {
        guard let value else { return }
        key(name)
        integer(value)
    }

    /// `"name":value`, left out when `value` is nil.
    public mutating func member(_ name: StaticString, ifPresent value: [String: JSONValue]?) {
        guard let value else { return }
        key(name)
        object(value)
    }

    /// `"name":value` written by `write`, left out when `value` is nil.
    public mutating func member<Value>(
        _ name: StaticString, ifPresent value: Value?, _ write: (inout CompactJSON, Value) -> Void
    ) {
        guard let value else { return }
        key(name)
        write(&self, value)
    }

    private mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
    }
}

extension Header {
    /// The header as `Codec`'s encoder writes it (sorted keys, absent optionals left out), written directly.
    public var compactJSON: [UInt8] {
        var json = CompactJSON(capacity: 160)
        json.beginObject()
        json.member("attempt", ifPresent: attempt)
        json.key("id")
        json.string(id)
        json.member("re", ifPresent: re)
        json.member("sender", ifPresent: sender)
        json.key("sentAt")
        json.integer(sentAt)
        json.member("step", ifPresent: step)
        json.key("type")
        json.string(type.rawValue)
        json.key("v")
        json.integer(v)
        json.member("workflow", ifPresent: workflow)
        json.endObject()
        return json.bytes
    }
}

/// Unique ids for the messages a process sends: a random 128-bit prefix drawn once per process and a counter,
/// as unique as a UUID per message without drawing random bytes and formatting a UUID for each one.
public enum MessageID {
    private static let prefix: String = {
        var generator = SystemRandomNumberGenerator()
        let high = generator.next() as UInt64
        let low = generator.next() as UInt64
        let hex = String(high, radix: 16) + "-" + String(low, radix: 16)
        return hex + "-"
    }()
    private static let counter = AtomicCounter()

    /// A new id: at most 54 bytes.
    public static func next() -> String {
        prefix + String(counter.increment(), radix: 16)
    }
}

/// A counter shared by every thread of the process.
final class AtomicCounter: Sendable {
    private let value = Atomic<UInt64>(0)

    func increment() -> UInt64 {
        value.wrappingAdd(1, ordering: .relaxed).newValue
    }
}

extension CompactJSON {
    /// A step's key as an object: `{"attempt":..,"step":..,"workflow":..}` (the keys of `StepKey`, sorted).
    public mutating func stepKey(_ key: StepKey) {
        beginObject()
        self.key("attempt")
        integer(key.attempt)
        self.key("step")
        string(key.step)
        self.key("workflow")
        string(key.workflow)
        endObject()
    }

    mutating func strings(_ values: [String]) {
        beginArray()
        for value in values { string(value) }
        endArray()
    }

    mutating func artifact(_ artifact: Artifact) {
        beginObject()
        key("data")
        string(artifact.data.base64EncodedString())
        key("mode")
        integer(artifact.mode)
        key("name")
        string(artifact.name)
        member("path", ifPresent: artifact.path)
        key("sensitive")
        bool(artifact.sensitive)
        endObject()
    }
}

extension StepResult {
    /// The result as JSON, written directly (what `JSONEncoder` would write, keys sorted).
    public var compactJSON: [UInt8] {
        var json = CompactJSON(capacity: 256)
        json.beginObject()
        json.key("agent")
        json.string(agent)
        json.member("error", ifPresent: error)
        json.key("finishedAt")
        json.integer(finishedAt)
        json.key("host")
        json.string(host)
        json.key("outcome")
        json.string(outcome.rawValue)
        json.key("output")
        json.beginObject()
        json.key("artifacts")
        json.beginArray()
        for artifact in output.artifacts { json.artifact(artifact) }
        json.endArray()
        json.key("log")
        json.strings(output.log)
        json.key("summary")
        json.string(output.summary)
        json.key("values")
        json.object(output.values)
        json.endObject()
        json.key("pid")
        json.integer(pid)
        json.key("startedAt")
        json.integer(startedAt)
        json.endObject()
        return json.bytes
    }
}

extension StepSnapshot {
    /// The step as JSON, written directly (what `JSONEncoder` would write, keys sorted), for its journal row
    /// and the events that carry it.
    public var compactJSON: [UInt8] {
        var json = CompactJSON(capacity: 256)
        json.beginObject()
        json.member("agent", ifPresent: agent)
        json.key("attempt")
        json.integer(attempt)
        json.key("critical")
        json.bool(critical)
        json.member("error", ifPresent: error)
        json.member("failures", ifPresent: failures)
        json.member("finishedAt", ifPresent: finishedAt)
        json.member("host", ifPresent: host)
        json.key("name")
        json.string(name)
        json.key("needs")
        json.strings(needs)
        json.member("params", ifPresent: params)
        json.member("pid", ifPresent: pid)
        json.key("role")
        json.string(role.rawValue)
        json.member("startedAt", ifPresent: startedAt)
        json.key("state")
        json.string(state.rawValue)
        json.member("summary", ifPresent: summary)
        json.key("values")
        json.object(values)
        json.endObject()
        return json.bytes
    }
}

extension WorkflowEvent {
    /// The event as JSON, written directly (what `JSONEncoder` would write, keys sorted).
    public var compactJSON: [UInt8] {
        compactJSON(encodedSteps: steps.map(\.compactJSON))
    }

    /// The event with `encodedSteps` (each a `StepSnapshot` already written, as its journal row holds it) in
    /// place of `steps`: the coordinator writes each changed step once for both.
    public func compactJSON(encodedSteps: [[UInt8]]) -> [UInt8] {
        var json = CompactJSON(capacity: 128 + encodedSteps.reduce(0) { $0 + $1.count + 1 })
        json.beginObject()
        json.member("error", ifPresent: error)
        json.member("finishedAt", ifPresent: finishedAt)
        json.key("previousRevision")
        json.integer(previousRevision)
        json.key("revision")
        json.integer(revision)
        json.key("state")
        json.string(state.rawValue)
        json.key("steps")
        json.beginArray()
        for step in encodedSteps { json.raw(step) }
        json.endArray()
        json.key("workflow")
        json.string(workflow)
        json.endObject()
        return json.bytes
    }
}

extension WorkflowSnapshot {
    /// The workflow without its steps (`"steps":[]`), with `request` already written, as JSON (what
    /// `JSONEncoder` would write for the workflow with no steps, keys sorted): the journal's header row, whose
    /// steps have rows of their own, and whose request is written once per workflow.
    public func headerCompactJSON(request: [UInt8]) -> [UInt8] {
        var json = CompactJSON(capacity: 160 + request.count)
        json.beginObject()
        json.key("createdAt")
        json.integer(createdAt)
        json.member("error", ifPresent: error)
        json.member("finishedAt", ifPresent: finishedAt)
        json.key("id")
        json.string(id)
        json.member("operation", ifPresent: operation) { json, operation in json.operation(operation) }
        json.key("request")
        json.raw(request)
        json.key("revision")
        json.integer(revision)
        json.key("state")
        json.string(state.rawValue)
        json.key("steps")
        json.beginArray()
        json.endArray()
        json.endObject()
        return json.bytes
    }
}

extension CompactJSON {
    /// `{"kind":..,"target":..}` (the keys of `WorkflowOperation`, sorted).
    mutating func operation(_ operation: WorkflowOperation) {
        beginObject()
        key("kind")
        string(operation.kind.rawValue)
        key("target")
        string(operation.target)
        endObject()
    }
}
