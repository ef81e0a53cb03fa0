/// A file destined for the GitOps repository.
public struct ManifestFile: Sendable, Equatable {
    /// Relative to the repository root, with `/` separators, e.g. `monitoring/10-prometheus.yaml`.
    public var path: String
    /// The file's text.
    public var contents: String

    public init(path: String, contents: String) {
        self.path = path
        self.contents = contents
    }

    /// Whether `path` is a plain relative path: not empty, not absolute, no `.` or `..` component, no empty
    /// component, no backslash or control character.
    public static func isSafeRelativePath(_ path: String) -> Bool {
        guard !path.isEmpty, !path.hasPrefix("/"), path.utf8.count <= 1024 else { return false }
        guard !path.unicodeScalars.contains(where: { $0.value < 0x20 || $0 == "\\" || $0.value == 0x7F }) else {
            return false
        }
        return path.split(separator: "/", omittingEmptySubsequences: false).allSatisfy {
            !$0.isEmpty && $0 != "." && $0 != ".."
        }
    }
}
