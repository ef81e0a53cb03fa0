import CZeroMQ

/// The kinds of socket used by shoal.
public enum SocketType: Sendable {
    case pair, pub, sub, req, rep, dealer, router, pull, push, xpub, xsub

    var rawValue: Int32 {
        switch self {
        case .pair: ZMQ_PAIR
        case .pub: ZMQ_PUB
        case .sub: ZMQ_SUB
        case .req: ZMQ_REQ
        case .rep: ZMQ_REP
        case .dealer: ZMQ_DEALER
        case .router: ZMQ_ROUTER
        case .pull: ZMQ_PULL
        case .push: ZMQ_PUSH
        case .xpub: ZMQ_XPUB
        case .xsub: ZMQ_XSUB
        }
    }
}

/// A typed socket option: `socket.set(.linger, 0)`.
public struct SocketOption<Value>: Sendable {
    let name: Int32
    init(_ name: Int32) { self.name = name }
}

extension SocketOption where Value == Int32 {
    public static var linger: Self { .init(ZMQ_LINGER) }
    public static var sendHighWaterMark: Self { .init(ZMQ_SNDHWM) }
    public static var receiveHighWaterMark: Self { .init(ZMQ_RCVHWM) }
    public static var receiveTimeout: Self { .init(ZMQ_RCVTIMEO) }
    public static var sendTimeout: Self { .init(ZMQ_SNDTIMEO) }
    public static var routerMandatory: Self { .init(ZMQ_ROUTER_MANDATORY) }
    public static var xpubVerbose: Self { .init(ZMQ_XPUB_VERBOSE) }
    public static var immediate: Self { .init(ZMQ_IMMEDIATE) }
    public static var reconnectInterval: Self { .init(ZMQ_RECONNECT_IVL) }
    public static var handshakeInterval: Self { .init(ZMQ_HANDSHAKE_IVL) }
    public static var curveServer: Self { .init(ZMQ_CURVE_SERVER) }
    /// DRAFT in libzmq's header, but honoured by stable 4.3 builds.
    public static var zapEnforceDomain: Self { .init(93) }
    public static var receiveMore: Self { .init(ZMQ_RCVMORE) }
    public static var plainServer: Self { .init(ZMQ_PLAIN_SERVER) }
}

extension SocketOption where Value == Int64 {
    /// Largest inbound message libzmq accepts; larger ones drop the peer.
    public static var maxMessageSize: Self { .init(ZMQ_MAXMSGSIZE) }
}

extension SocketOption where Value == String {
    public static var lastEndpoint: Self { .init(ZMQ_LAST_ENDPOINT) }
    public static var routingID: Self { .init(ZMQ_ROUTING_ID) }
    public static var subscribe: Self { .init(ZMQ_SUBSCRIBE) }
    public static var unsubscribe: Self { .init(ZMQ_UNSUBSCRIBE) }
    public static var zapDomain: Self { .init(ZMQ_ZAP_DOMAIN) }
    /// Z85 text keys (40 characters).
    public static var curveSecretKey: Self { .init(ZMQ_CURVE_SECRETKEY) }
    public static var curvePublicKey: Self { .init(ZMQ_CURVE_PUBLICKEY) }
    public static var curveServerKey: Self { .init(ZMQ_CURVE_SERVERKEY) }
}
