/// Parses durations such as `2s`, `500ms`, `1m`, `1.5s` or a bare number of seconds.
public func parseDuration(_ text: String) -> Duration? {
    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
    for (suffix, scale) in units where text.hasSuffix(suffix) {
        let number = text.dropLast(suffix.count)
        if suffix == "s" && number.hasSuffix("m") { continue }
        guard let value = Double(number), value >= 0, value.isFinite else { return nil }
        return .milliseconds(Int64((value * scale * 1000).rounded()))
    }
    guard let value = Double(text), value >= 0, value.isFinite else { return nil }
    return .milliseconds(Int64((value * 1000).rounded()))
}

extension Duration {
    /// Whole milliseconds, for wire formats and timers.
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
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
