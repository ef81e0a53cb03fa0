import CZeroMQ

/// What a CURVE client needs: the server's public key and its own key pair.
public struct CurveClientKeys: Sendable, Equatable {
    /// The server's Z85 public key; a server with another key fails the handshake.
    public var serverPublicKey: String
    /// The client's own key pair; the server's ZAP handler checks its public key.
    public var keyPair: CurveKeyPair

    public init(serverPublicKey: String, keyPair: CurveKeyPair) {
        self.serverPublicKey = serverPublicKey
        self.keyPair = keyPair
    }
}

extension Socket {
    /// Makes this socket a CURVE server: every peer must complete a CURVE
    /// handshake, and the context's ZAP handler for `zapDomain` decides
    /// which client keys may. Call before `bind`, and start the `ZAPHandler`
    /// first: with `zapEnforceDomain` on, a handshake without a handler
    /// fails instead of being let through.
    /// - Parameters:
    ///   - secretKey: the server's Z85 secret key.
    ///   - zapDomain: the domain the ZAP handler serves.
    /// - Throws: `ZMQError` (EINVAL for a malformed key).
    public func makeCurveServer(secretKey: String, zapDomain: String) throws(ZMQError) {
        try set(.curveServer, 1)
        try set(.curveSecretKey, secretKey)
        try set(.zapDomain, zapDomain)
        try set(.zapEnforceDomain, 1)
    }

    /// Makes this socket a CURVE client of the server whose public key is
    /// given. Call before `connect`.
    /// - Throws: `ZMQError` (EINVAL for a malformed key).
    public func makeCurveClient(_ keys: CurveClientKeys) throws(ZMQError) {
        try set(.curveServerKey, keys.serverPublicKey)
        try set(.curvePublicKey, keys.keyPair.publicKey)
        try set(.curveSecretKey, keys.keyPair.secretKey)
    }

    /// Stops listening on an endpoint; libzmq also closes the connections
    /// accepted there, so their peers reconnect and handshake again. The
    /// endpoint must be spelled as `lastEndpoint` gives it. Asynchronous: the
    /// port may stay busy for a moment.
    public func unbind(_ endpoint: String) throws(ZMQError) {
        try zmqCheck("zmq_unbind") { zmq_unbind(rawHandle, endpoint) }
    }
}

/// A received multipart message with the properties libzmq attached to it.
public struct ReceivedMessage: Sendable, Equatable {
    public var frames: [[UInt8]]
    /// The "User-Id" property: what the ZAP handler returned for the peer
    /// (`ZAPHandler` returns the client's Z85 public key); nil without ZAP.
    public var userID: String?
}

extension Socket {
    /// Receives a whole multipart message through `zmq_msg_t`, with the
    /// peer's ZAP user id.
    /// - Parameter wait: block until a message arrives (or the receive
    ///   timeout passes); when false, return `nil` at once if none is queued.
    /// - Returns: the message, or `nil` when nothing arrived.
    public func receiveMessage(wait: Bool = true) throws(ZMQError) -> ReceivedMessage? {
        var frames: [[UInt8]] = []
        var userID: String?
        var flags: Int32 = wait ? 0 : ZMQ_DONTWAIT
        while true {
            var message = zmq_msg_t()
            zmq_msg_init(&message)
            defer { zmq_msg_close(&message) }
            let outcome = try zmqCall("zmq_msg_recv") { zmq_msg_recv(&message, rawHandle, flags) }
            guard case .done = outcome else {
                // Later frames of a message are already queued, so only the
                // first can be missing.
                return frames.isEmpty ? nil : ReceivedMessage(frames: frames, userID: userID)
            }
            if userID == nil, let property = zmq_msg_gets(&message, "User-Id") {
                let value = String(cString: property)
                if !value.isEmpty { userID = value }
            }
            let size = zmq_msg_size(&message)
            if size == 0 {
                frames.append([])
            } else {
                let data = zmq_msg_data(&message)!
                frames.append(Array(UnsafeRawBufferPointer(start: data, count: size)))
            }
            if zmq_msg_more(&message) == 0 { return ReceivedMessage(frames: frames, userID: userID) }
            flags = 0
        }
    }
}

extension CurveKeyPair {
    /// Whether `key` is a 40-character Z85 text that decodes to a 32-byte key.
    public static func isValidKey(_ key: String) -> Bool {
        guard key.utf8.count == 40 else { return false }
        var decoded = [UInt8](repeating: 0, count: 32)
        return zmq_z85_decode(&decoded, key) != nil
    }
}
