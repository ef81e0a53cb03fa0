/// A quick reader for headers in the compact form shoal's own encoder writes: one JSON object without
/// whitespace, known keys once each, ASCII strings whose only escape is `\/`, plain integers. Anything else (or
/// anything it is unsure of) returns nil, and the caller decodes with `JSONDecoder`, which then accepts or
/// rejects it as before: for what this reader accepts, both give the same header.
enum FastHeader {
    static func parse(_ bytes: [UInt8]) -> Header? {
        bytes.withUnsafeBufferPointer { parse($0) }
    }

    private enum Key: Int {
        case v, type, id, workflow, step, attempt, sentAt, sender, re
    }

    private static func key(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Key? {
        func equals(_ name: StaticString) -> Bool {
            guard name.utf8CodeUnitCount == end - start else { return false }
            let pointer = name.utf8Start
            for offset in 0..<(end - start) where pointer[offset] != b[start + offset] { return false }
            return true
        }
        switch end - start {
        case 1: return equals("v") ? .v : nil
        case 2: return equals("id") ? .id : equals("re") ? .re : nil
        case 4: return equals("type") ? .type : equals("step") ? .step : nil
        case 6: return equals("sentAt") ? .sentAt : equals("sender") ? .sender : nil
        case 7: return equals("attempt") ? .attempt : nil
        case 8: return equals("workflow") ? .workflow : nil
        default: return nil
        }
    }

    private enum Value {
        case string(String)
        case integer(Int64)
        case null
    }

    private static func parse(_ b: UnsafeBufferPointer<UInt8>) -> Header? {
        let quote = UInt8(ascii: "\"")
        var i = 0
        let n = b.count
        guard n >= 2, b[0] == UInt8(ascii: "{"), b[n - 1] == UInt8(ascii: "}") else { return nil }
        i = 1
        var seen = 0
        var v: Int64?
        var type: MessageType?
        var id: String?
        var workflow: String?
        var step: String?
        var attempt: Int64?
        var sentAt: Int64?
        var sender: String?
        var re: String?
        let backslash = UInt8(ascii: "\\")
        // A string of ASCII without control characters, whose only escape is `\/` (JSONEncoder writes `/` so);
        // returns its end (after the quote).
        func scanString(_ start: Int) -> Int? {
            guard start < n, b[start] == quote else { return nil }
            var j = start + 1
            while j < n {
                let c = b[j]
                if c == quote { return j + 1 }
                if c == backslash {
                    guard j + 1 < n, b[j + 1] == UInt8(ascii: "/") else { return nil }
                    j += 1
                } else if c < 0x20 || c >= 0x80 {
                    return nil
                }
                j += 1
            }
            return nil
        }
        func scanValue(_ start: Int) -> (Value, Int)? {
            guard start < n else { return nil }
            let c = b[start]
            if c == quote {
                guard let end = scanString(start) else { return nil }
                let raw = UnsafeBufferPointer(rebasing: b[(start + 1)..<(end - 1)])
                let text =
                    raw.contains(backslash)
                    ? String(decoding: raw.filter { $0 != backslash }, as: UTF8.self)
                    : String(decoding: raw, as: UTF8.self)
                return (.string(text), end)
            }
            if c == UInt8(ascii: "n") {
                guard start + 4 <= n, b[start + 1] == UInt8(ascii: "u"), b[start + 2] == UInt8(ascii: "l"),
                    b[start + 3] == UInt8(ascii: "l")
                else { return nil }
                return (.null, start + 4)
            }
            var j = start
            let negative = c == UInt8(ascii: "-")
            if negative { j += 1 }
            let digitsStart = j
            var value: Int64 = 0
            while j < n, b[j] >= UInt8(ascii: "0"), b[j] <= UInt8(ascii: "9") {
                guard j - digitsStart < 18 else { return nil }
                value = value * 10 + Int64(b[j] - UInt8(ascii: "0"))
                j += 1
            }
            let digits = j - digitsStart
            // No leading zeros, at most 18 digits (no overflow); fractions and exponents go to the full decoder.
            guard digits >= 1, !(digits > 1 && b[digitsStart] == UInt8(ascii: "0")) else { return nil }
            return (.integer(negative ? -value : value), j)
        }
        while true {
            guard let keyEnd = scanString(i), let name = key(b, i + 1, keyEnd - 1) else { return nil }
            guard seen & (1 << name.rawValue) == 0 else { return nil }
            seen |= 1 << name.rawValue
            guard keyEnd < n, b[keyEnd] == UInt8(ascii: ":"), let (value, end) = scanValue(keyEnd + 1) else {
                return nil
            }
            switch (name, value) {
            case (.v, .integer(let number)): v = number
            case (.sentAt, .integer(let number)): sentAt = number
            case (.attempt, .integer(let number)): attempt = number
            case (.attempt, .null), (.workflow, .null), (.step, .null), (.sender, .null), (.re, .null): break
            case (.type, .string(let text)):
                guard let known = MessageType(rawValue: text) else { return nil }
                type = known
            case (.id, .string(let text)): id = text
            case (.workflow, .string(let text)): workflow = text
            case (.step, .string(let text)): step = text
            case (.sender, .string(let text)): sender = text
            case (.re, .string(let text)): re = text
            default: return nil
            }
            i = end
            guard i < n else { return nil }
            if b[i] == UInt8(ascii: ",") {
                i += 1
                continue
            }
            guard b[i] == UInt8(ascii: "}"), i == n - 1 else { return nil }
            break
        }
        guard let v, let type, let id, let sentAt, Int64(Int.min) <= v, v <= Int64(Int.max) else { return nil }
        var header = Header(type: type, workflow: workflow, step: step, attempt: attempt.map { Int($0) },
            sender: sender, re: re, id: id)
        header.v = Int(v)
        header.sentAt = sentAt
        return header
    }
}

extension Heartbeat {
    /// How an idle agent's heartbeat is encoded (`{"inFlight":[]}`), recognised without a `JSONDecoder`.
    static let emptyEncoded: [UInt8] = Codec.encodeJSON(Heartbeat())

    /// Decodes a heartbeat body strictly; the common empty one is matched byte for byte.
    /// - Throws: `DecodeError(.malformedBody)`.
    public static func decode(_ body: [UInt8]) throws(DecodeError) -> Heartbeat {
        if body == emptyEncoded { return Heartbeat() }
        if let quick = quick(body) { return quick }
        return try Codec.decodeBody(Heartbeat.self, body)
    }
}
