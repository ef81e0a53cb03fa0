import ArgumentParser
import ShoalSupport

/// Durations on the command line: `--heartbeat 250ms`, `--step-timeout 1h30m`. What does not parse is refused by
/// the parser with the option's name; each command checks the range its option allows in `validate()`.
extension ShoalDuration: ExpressibleByArgument {
    public init?(argument: String) {
        guard let parsed = try? ShoalDuration(parsing: argument) else { return nil }
        self = parsed
    }

    public var defaultValueDescription: String { description }
}

extension ShoalDuration {
    /// ``check(in:option:)`` as the command-line parser reports it.
    /// - Throws: `ValidationError` naming the option and its range.
    func validate(in range: ClosedRange<Duration>, option: String) throws {
        do {
            try check(in: range, option: option)
        } catch let error as ShoalError {
            throw ValidationError(error.message)
        }
    }
}
