import ArgumentParser
import Coordinator
import Foundation
import ShoalSupport
import ZeroMQ

/// Where shoal keeps keys when no flag says otherwise.
enum KeyDefaults {
    static var home: String { ProcessInfo.processInfo.environment["HOME"] ?? "." }
    /// Key pairs made by `shoal keys generate`.
    static var keyDirectory: String { home + "/.shoal/keys" }
    /// The coordinator's allow-list.
    static var allowDirectory: String { home + "/.shoal/allow" }
}

/// The CURVE options of everything that connects to a coordinator: agents
/// and the client commands given `--coordinator`.
struct ClientSecurityOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "This peer's secret key file, NAME.key (or $SHOAL_KEY, or the context's).", valueName: "file"))
    var key: String?
    @Option(
        help: ArgumentHelp(
            "The coordinator's public key file, coordinator.pub (or $SHOAL_COORDINATOR_KEY, or the context's).",
            valueName: "file"))
    var coordinatorKey: String?
    @Flag(help: "Plain TCP, for a coordinator run with --insecure: nothing is encrypted or authenticated.")
    var insecure = false

    /// The secret key file: --key, $SHOAL_KEY, the context's.
    var keySetting: Setting<String?> { ShoalConfig.resolve(flag: key, environment: "SHOAL_KEY", \.key) }
    /// The coordinator's public key file: --coordinator-key, $SHOAL_COORDINATOR_KEY, the context's.
    var coordinatorKeySetting: Setting<String?> {
        ShoalConfig.resolve(flag: coordinatorKey, environment: "SHOAL_COORDINATOR_KEY", \.coordinatorKey)
    }
    /// --insecure, else the context's `insecure` unless a key comes from a flag or the environment.
    var insecureSetting: Setting<Bool> {
        if insecure { return Setting(value: true, source: .flag) }
        // Keys given as flags (agents, services) settle it without reading the config file.
        if key != nil || coordinatorKey != nil { return Setting(value: false, source: .defaultValue) }
        for source in [keySetting.source, coordinatorKeySetting.source] {
            switch source {
            case .flag, .environment: return Setting(value: false, source: .defaultValue)
            case .config, .defaultValue: continue
            }
        }
        let active = ShoalConfig.active
        if let name = active.name.value, let value = active.context?.insecure {
            return Setting(value: value, source: .config(name))
        }
        return Setting(value: false, source: .defaultValue)
    }
    var isInsecure: Bool { insecureSetting.value }

    private var keyPath: String? { keySetting.value }
    private var coordinatorKeyPath: String? { coordinatorKeySetting.value }

    /// The keys to connect with; nil with `--insecure`.
    /// - Throws: `ValidationError` with a one-line reason (missing flag,
    ///   missing, malformed or world-readable key file).
    func curveKeys() throws -> CurveClientKeys? {
        if isInsecure {
            guard key == nil && coordinatorKey == nil else {
                throw ValidationError("--insecure cannot be combined with --key or --coordinator-key")
            }
            return nil
        }
        guard let keyPath else {
            throw ValidationError(
                "--key is required: this peer's secret key file (create one with `shoal keys generate NAME`), "
                    + "or --insecure for plain TCP")
        }
        guard let coordinatorKeyPath else {
            throw ValidationError(
                "--coordinator-key is required: the coordinator's public key file (coordinator.pub), "
                    + "or --insecure for plain TCP")
        }
        do {
            let own = try KeyFile.loadSecret(keyPath)
            let server = try KeyFile.loadPublic(coordinatorKeyPath)
            return CurveClientKeys(serverPublicKey: server.publicKey, keyPair: own.keyPair!)
        } catch let error as ShoalError {
            throw ValidationError(error.description)
        }
    }

    /// Prints the `--insecure` warning on standard error.
    func warnIfInsecure() {
        if isInsecure { warnInsecure() }
    }
}

/// The coordinator's CURVE options.
struct ServerSecurityOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The coordinator's secret key file, NAME.key.", valueName: "file"))
    var key: String?
    @Option(
        help: ArgumentHelp(
            "Directory of allowed public keys (NAME.pub), re-read every second (default ~/.shoal/allow).",
            valueName: "dir"))
    var allow: String?
    @Flag(help: "Plain TCP: nothing is encrypted, anyone who reaches the ports can join and read steps.")
    var insecure = false

    /// The coordinator's security configuration; nil with `--insecure`.
    /// - Throws: `ValidationError` with a one-line reason.
    func security() throws -> CoordinatorSecurity? {
        if insecure {
            guard key == nil && allow == nil else {
                throw ValidationError("--insecure cannot be combined with --key or --allow")
            }
            return nil
        }
        guard let key else {
            throw ValidationError(
                "--key is required: the coordinator's secret key file (create one with "
                    + "`shoal keys generate coordinator`), or --insecure for plain TCP")
        }
        let allowDirectory = allow ?? KeyDefaults.allowDirectory
        do {
            let contents = try KeyFile.loadSecret(key)
            _ = try AllowListDirectory(path: allowDirectory).load()
            return CoordinatorSecurity(keyPair: contents.keyPair!, allowDirectory: allowDirectory)
        } catch let error as ShoalError {
            throw ValidationError(error.description)
        }
    }

    func warnIfInsecure() {
        if insecure { warnInsecure() }
    }
}

/// The one warning `--insecure` prints, on standard error.
func warnInsecure() {
    FileHandle.standardError.write(
        Data(
            ("warning: --insecure: the bus runs over plain TCP without authentication; anyone who can reach its "
                + "ports can read steps (kubeconfigs, passwords) and join as an agent\n").utf8))
}
