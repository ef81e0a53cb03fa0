import Foundation

/// Settings for a short, bounded run of a program written in Go (terraform init, validate and plan; kubectl
/// kustomize).
///
/// Such a run lives for a tenth of a second and allocates little, yet Go's collector, paced for long-lived servers
/// (`GOGC=100`), runs several cycles in it, freeing memory the exit frees anyway: measured, about half of the CPU
/// time of `kubectl kustomize` and a quarter of terraform's. `GOGC=off` with a `GOMEMLIMIT` collects only when the
/// heap nears the limit, so memory stays bounded and the output is the same. A `GOGC` or `GOMEMLIMIT` of the
/// user's own environment is kept.
public enum GoRuntime {
    /// The heap a short run may reach before Go's collector runs.
    public static let shortRunMemoryLimit = "512MiB"

    /// Variables to add to the environment of a short run: none when `inherited` already sets either.
    public static func shortRunEnvironment(
        inherited: [String: String] = ProcessInfo.processInfo.environment
    ) -> [String: String] {
        if inherited["GOGC"] != nil || inherited["GOMEMLIMIT"] != nil { return [:] }
        return ["GOGC": "off", "GOMEMLIMIT": shortRunMemoryLimit]
    }
}
