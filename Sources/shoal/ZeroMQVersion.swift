import ZeroMQ

enum ZeroMQVersion {
    static var current: String {
        let version = Context.libraryVersion
        return "\(version.major).\(version.minor).\(version.patch)"
    }
}
