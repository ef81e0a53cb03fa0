/// An error of shoal's own, with a code callers can match on, a message for
/// the user, and the underlying cause (errno, exit status, stderr tail).
public struct ShoalError: Error, CustomStringConvertible, Sendable {
    /// Extensible error codes.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        public static let executableNotFound = Code("executable-not-found")
        public static let launchFailed = Code("launch-failed")
        public static let commandFailed = Code("command-failed")
        public static let invalidInput = Code("invalid-input")
        public static let io = Code("io")
        public static let notSupported = Code("not-supported")
        public static let notAvailableYet = Code("not-available-yet")
        public static let timeout = Code("timeout")
        public static let protocolViolation = Code("protocol")
        public static let notFound = Code("not-found")
        public static let unreachable = Code("unreachable")
        public static let forbidden = Code("forbidden")
        /// Another process owns what was asked for (a journal, an output directory).
        public static let alreadyRunning = Code("already-running")
    }

    public var code: Code
    public var message: String
    public var cause: String?

    public init(_ code: Code, _ message: String, cause: String? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        guard let cause, !cause.isEmpty else { return message }
        return "\(message): \(cause)"
    }
}
