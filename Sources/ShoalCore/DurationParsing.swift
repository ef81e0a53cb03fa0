/// A duration written by a user: `2s`, `500ms`, `1m30s`, `1h`, `1.5s`, or a bare number of seconds (`0`, `2.5`).
///
/// The grammar is deliberately narrow so that nothing a user types can trap or mean something surprising:
/// ASCII digits with an optional fraction, each followed by a unit (`h`, `m`, `s`, `ms`) in decreasing order,
/// at most once each. Signs, exponents (`1e20`), hexadecimal (`0x10s`), spaces and anything longer than
/// ``maximum`` are refused. Values are kept in whole milliseconds.
public struct ShoalDuration: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The longest duration accepted at all (a year); options narrow it with their own range.
    public static let maximum = Duration.seconds(366 * 86_400)

    /// The parsed value.
    public let duration: Duration

    /// Wraps a duration already known (a default value).
    public init(_ duration: Duration) {
        self.duration = duration
    }

    /// Parses `text`.
    /// - Throws: `ShoalError(.invalidInput)` saying which forms are allowed.
    public init(parsing text: String) throws {
        guard let milliseconds = ShoalDuration.milliseconds(in: text) else {
            throw ShoalError(
                .invalidInput,
                "invalid duration '\(Names.printable(text))': use a number with a unit such as 500ms, 2s, 1m30s or 1h"
            )
        }
        duration = .milliseconds(milliseconds)
    }

    /// Checks that the value lies within `range`.
    /// - Parameters:
    ///   - range: the values the option accepts.
    ///   - option: the option's name for the message, e.g. `--heartbeat`.
    /// - Throws: `ShoalError(.invalidInput)` naming the option and the range.
    public func check(in range: ClosedRange<Duration>, option: String) throws {
        guard range.contains(duration) else {
            throw ShoalError(
                .invalidInput,
                "\(option) must be between \(ShoalDuration(range.lowerBound)) and \(ShoalDuration(range.upperBound)), "
                    + "got \(self)")
        }
    }

    /// The canonical form, which parses back to the same value: `0s`, `500ms`, `1m30s`, `2h0m1s`.
    public var description: String {
        var rest = duration.milliseconds
        if rest == 0 { return "0s" }
        var out = ""
        let hours = rest / 3_600_000
        rest %= 3_600_000
        let minutes = rest / 60_000
        rest %= 60_000
        let seconds = rest / 1000
        let millis = rest % 1000
        if hours > 0 { out += "\(hours)h" }
        if minutes > 0 { out += "\(minutes)m" }
        if seconds > 0 { out += "\(seconds)s" }
        if millis > 0 { out += "\(millis)ms" }
        return out
    }

    public static func < (lhs: ShoalDuration, rhs: ShoalDuration) -> Bool { lhs.duration < rhs.duration }

    private static let units: [(name: String, milliseconds: Int64)] = [
        ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1),
    ]

    /// The whole milliseconds `text` denotes, or nil when it is not a duration or exceeds ``maximum``.
    static func milliseconds(in text: String) -> Int64? {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count <= 64 else { return nil }
        let limit = ShoalDuration.maximum.milliseconds
        var total: Int64 = 0
        var index = 0
        var nextUnit = 0
        while index < bytes.count {
            guard let (whole, fraction, digits, end) = number(bytes, from: index) else { return nil }
            index = end
            var scale: Int64 = 1000  // a bare number is seconds
            if index < bytes.count {
                guard let unit = unit(bytes, from: index, notBefore: nextUnit) else { return nil }
                scale = units[unit].milliseconds
                index += units[unit].name.utf8.count
                nextUnit = unit + 1
            } else if nextUnit > 0 {
                return nil  // `1m30` is ambiguous
            }
            // Every intermediate value is bounded by `limit` (about 3.2e10), far from Int64's range.
            guard whole <= limit / scale else { return nil }
            var part = whole * scale
            var divisor: Int64 = 1
            for _ in 0..<digits { divisor *= 10 }
            part += (fraction * scale + divisor / 2) / divisor
            total += part
            guard total <= limit else { return nil }
        }
        return total
    }

    /// Digits with an optional `.` and more digits: (whole, fraction, fraction digits, end index).
    private static func number(_ bytes: [UInt8], from start: Int) -> (Int64, Int64, Int, Int)? {
        var index = start
        var whole: Int64 = 0
        while index < bytes.count, isDigit(bytes[index]) {
            guard whole < 1_000_000_000_000 else { return nil }
            whole = whole * 10 + Int64(bytes[index] - 48)
            index += 1
        }
        guard index > start else { return nil }
        var fraction: Int64 = 0
        var digits = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            let fractionStart = index
            while index < bytes.count, isDigit(bytes[index]) {
                // Beyond nine digits nothing changes at millisecond precision.
                if digits < 9 {
                    fraction = fraction * 10 + Int64(bytes[index] - 48)
                    digits += 1
                }
                index += 1
            }
            guard index > fractionStart else { return nil }
        }
        return (whole, fraction, digits, index)
    }

    /// The index in `units` of the unit starting at `start`, if it is allowed after the previous one.
    private static func unit(_ bytes: [UInt8], from start: Int, notBefore: Int) -> Int? {
        let rest = bytes[start...]
        // `ms` before `m`, so the longest name wins.
        let order = [3, 0, 1, 2]
        for candidate in order where rest.starts(with: units[candidate].name.utf8) {
            let end = start + units[candidate].name.utf8.count
            // The unit must end where the next number starts (or the text ends).
            guard end == bytes.count || isDigit(bytes[end]) else { return nil }
            return candidate >= notBefore ? candidate : nil
        }
        return nil
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= 48 && byte <= 57 }
}

/// Parses durations such as `2s`, `500ms`, `1m30s`, `1.5s` or a bare number of seconds; nil for anything else.
/// Command-line options use ``ShoalDuration`` directly, which explains what it refused.
public func parseDuration(_ text: String) -> Duration? {
    (try? ShoalDuration(parsing: text))?.duration
}

extension Duration {
    /// Whole milliseconds, for wire formats and timers (saturating at `Int64`'s bounds).
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, overflow2) = scaled.addingReportingOverflow(attoseconds / 1_000_000_000_000_000)
        return overflow2 ? (seconds < 0 ? .min : .max) : sum
    }

    /// A short human form: `850ms`, `2.4s`, `3m05s`.
    public var shortDescription: String {
        let ms = milliseconds
        if ms < 1000 { return "\(ms)ms" }
        if ms < 60_000 { return String(format1: Double(ms) / 1000) + "s" }
        let seconds = ms / 1000
        let remainder = seconds % 60
        return "\(seconds / 60)m" + (remainder < 10 ? "0" : "") + "\(remainder)s"
    }
}

extension String {
    /// One decimal place without Foundation's formatter.
    init(format1 value: Double) {
        let tenths = Int((value * 10).rounded())
        self = "\(tenths / 10).\(tenths % 10)"
    }
}
