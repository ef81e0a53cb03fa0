import Foundation
import Logging
import ShoalSupport
import ZeroMQ

/// How a coordinator authenticates its peers: CURVE on both sockets, with
/// the coordinator's key pair and a directory of allowed public keys.
public struct CoordinatorSecurity: Sendable {
    /// The ZAP domain of the coordinator's sockets.
    public static let zapDomain = "shoal"

    /// The coordinator's own key pair; peers need its public key.
    public var keyPair: CurveKeyPair
    /// The allow-list: a directory of `NAME.pub` files.
    public var allowDirectory: String
    /// How often the allow-list directory is checked for changes (default 1 s).
    public var reloadInterval: Duration = .seconds(1)

    public init(keyPair: CurveKeyPair, allowDirectory: String) {
        self.keyPair = keyPair
        self.allowDirectory = allowDirectory
    }
}

/// The coordinator's side of CURVE: the allow-list, kept in step with its
/// directory, and the ZAP handler that enforces it. Lives on the socket
/// thread; the ZAP handler runs on its own.
final class BusGuard {
    let security: CoordinatorSecurity
    let allowList = CurveAllowList()
    private let directory: AllowListDirectory
    private let logger: Logger
    private let handler: ZAPHandler
    private let refusals: RefusalCounter
    private var fingerprint: [String] = []
    private var lastCheck = ContinuousClock.now
    /// Names by key, for log lines.
    private(set) var names: [String: String] = [:]

    /// Loads the allow-list and starts the ZAP handler; call before any CURVE socket binds.
    /// - Throws: `ShoalError` when the directory cannot be read or the handler cannot start.
    init(security: CoordinatorSecurity, context: Context, logger: Logger) throws {
        self.security = security
        self.logger = logger
        directory = AllowListDirectory(path: security.allowDirectory)
        let refusals = RefusalCounter(logger: logger)
        self.refusals = refusals
        fingerprint = directory.fingerprint()
        let (entries, problems) = try directory.load()
        allowList.replace(with: Set(entries.map(\.publicKey)))
        names = Dictionary(entries.map { ($0.publicKey, $0.name) }, uniquingKeysWith: { first, _ in first })
        for problem in problems { logger.warning("allow-list file ignored", metadata: ["problem": "\(problem)"]) }
        if entries.isEmpty {
            logger.warning(
                "allow-list is empty: no agent or client can connect", metadata: ["allow": "\(directory.path)"])
        }
        logger.info("allow-list loaded", metadata: ["allow": "\(directory.path)", "keys": "\(entries.count)"])
        do {
            handler = try ZAPHandler(
                context: context, domain: CoordinatorSecurity.zapDomain, allowList: allowList,
                onRejection: refusals.record)
        } catch {
            throw ShoalError(.io, "cannot start the ZAP handler", cause: "\(error)")
        }
    }

    func stop() { handler.stop() }

    /// Handshakes refused so far, by reason.
    var refusalCounts: [ZAPRejection.Reason: Int] { refusals.counts }

    /// Makes a socket a CURVE server guarded by this handler.
    func secure(_ socket: Socket) throws {
        try socket.makeCurveServer(secretKey: security.keyPair.secretKey, zapDomain: CoordinatorSecurity.zapDomain)
    }

    /// Re-reads the directory when it changed and the reload interval passed.
    /// - Returns: the keys removed from the allow-list (empty when none).
    func reloadIfChanged() -> Set<String> {
        let now = ContinuousClock.now
        guard now - lastCheck >= security.reloadInterval else { return [] }
        lastCheck = now
        let current = directory.fingerprint()
        guard current != fingerprint else { return [] }
        fingerprint = current
        let entries: [AllowListDirectory.Entry]
        do {
            let loaded = try directory.load()
            entries = loaded.entries
            for problem in loaded.problems {
                logger.warning("allow-list file ignored", metadata: ["problem": "\(problem)"])
            }
        } catch {
            // A directory that vanished allows nobody; better than keeping stale keys.
            logger.error("allow-list unreadable: allowing no key", metadata: ["error": "\(error)"])
            entries = []
        }
        let previousNames = names
        names = Dictionary(entries.map { ($0.publicKey, $0.name) }, uniquingKeysWith: { first, _ in first })
        let change = allowList.replace(with: Set(entries.map(\.publicKey)))
        for key in change.added.sorted() {
            logger.info("key allowed", metadata: ["key.name": "\(names[key] ?? "?")", "key": "\(key)"])
        }
        for key in change.removed.sorted() {
            logger.warning("key revoked", metadata: ["key.name": "\(previousNames[key] ?? "?")", "key": "\(key)"])
        }
        return change.removed
    }
}

/// Counts refused handshakes by reason and logs the first ten of each,
/// then every thousandth, so a peer retrying in a loop cannot flood the log.
final class RefusalCounter: @unchecked Sendable {  // `stored` is guarded by `lock`
    private let lock = NSLock()
    private var stored: [ZAPRejection.Reason: Int] = [:]
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    var counts: [ZAPRejection.Reason: Int] { lock.withLock { stored } }

    func record(_ rejection: ZAPRejection) {
        let count = lock.withLock {
            stored[rejection.reason, default: 0] += 1
            return stored[rejection.reason]!
        }
        guard count <= 10 || count.isMultiple(of: 1000) else { return }
        logger.warning(
            "connection refused",
            metadata: [
                "reason": "\(rejection.reason.rawValue)", "peer.address": "\(rejection.request.address)",
                "peer.mechanism": "\(rejection.request.mechanism)", "key": "\(rejection.request.clientKey ?? "-")",
                "count": "\(count)",
            ])
    }
}
