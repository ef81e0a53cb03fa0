import Glibc

/// What shoal's children start with, whatever this process did to its own signals (`shoal create` and the step
/// worker ignore some, the lean agent blocks some): an empty signal mask and the default disposition of SIGINT,
/// SIGTERM, SIGPIPE, SIGHUP and SIGCHLD.
public enum SpawnAttributes {
    /// Runs `body` with such attributes; `processGroup` also puts the child in a process group of its own.
    public static func withDefaults<T>(processGroup: Bool = false, _ body: (inout posix_spawnattr_t) throws -> T)
        rethrows -> T
    {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGPIPE, SIGHUP, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if processGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))
        return try body(&attributes)
    }
}
