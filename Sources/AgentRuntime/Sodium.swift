import CSodium
import FoundationEssentials

/// The agent's cryptography, from libsodium (already loaded for libzmq's CURVE): SHA-256 for artifact digests,
/// HKDF-SHA256 and ChaCha20-Poly1305 (IETF) for the sealed lines of the idempotency record.
enum Sodium {
    private static let ready: Bool = sodium_init() >= 0

    /// The SHA-256 of `data` as 64 lowercase hex digits.
    static func sha256Hex(_ data: Data) -> String {
        var digest = [UInt8](repeating: 0, count: Int(crypto_hash_sha256_BYTES))
        data.withUnsafeBytes { bytes in
            _ = crypto_hash_sha256(&digest, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(bytes.count))
        }
        return hex(digest)
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    private static func hmacSHA256(key: [UInt8], _ message: [UInt8]) -> [UInt8] {
        var state = crypto_auth_hmacsha256_state()
        var mac = [UInt8](repeating: 0, count: Int(crypto_auth_hmacsha256_BYTES))
        crypto_auth_hmacsha256_init(&state, key, key.count)
        crypto_auth_hmacsha256_update(&state, message, UInt64(message.count))
        crypto_auth_hmacsha256_final(&state, &mac)
        return mac
    }

    /// HKDF-SHA256 (RFC 5869) without a salt, 32 bytes of output: one HMAC to extract, one to expand.
    static func hkdfSHA256(inputKeyMaterial: [UInt8], info: [UInt8]) -> [UInt8] {
        let pseudoRandomKey = hmacSHA256(key: [UInt8](repeating: 0, count: 32), inputKeyMaterial)
        return hmacSHA256(key: pseudoRandomKey, info + [1])
    }

    /// 32 random bytes from the system's CSPRNG.
    static func randomKey() -> [UInt8] {
        precondition(ready, "libsodium failed to initialise")
        var key = [UInt8](repeating: 0, count: 32)
        randombytes_buf(&key, key.count)
        return key
    }

    private static let nonceBytes = Int(crypto_aead_chacha20poly1305_ietf_NPUBBYTES)
    private static let tagBytes = Int(crypto_aead_chacha20poly1305_ietf_ABYTES)

    /// ChaCha20-Poly1305 (IETF) of `plain` under a 32-byte key, as nonce (12 bytes), ciphertext and tag (16).
    static func seal(_ plain: Data, key: [UInt8], authenticating associated: [UInt8]) -> Data? {
        guard ready, key.count == 32 else { return nil }
        var nonce = [UInt8](repeating: 0, count: nonceBytes)
        randombytes_buf(&nonce, nonce.count)
        var sealed = [UInt8](repeating: 0, count: plain.count + tagBytes)
        var length: UInt64 = 0
        let status = plain.withUnsafeBytes { bytes in
            crypto_aead_chacha20poly1305_ietf_encrypt(
                &sealed, &length, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(bytes.count),
                associated, UInt64(associated.count), nil, nonce, key)
        }
        guard status == 0 else { return nil }
        return Data(nonce + sealed.prefix(Int(length)))
    }

    /// Opens what `seal` wrote; nil when the key, the associated data or the bytes do not match.
    static func open(_ combined: Data, key: [UInt8], authenticating associated: [UInt8]) -> Data? {
        guard ready, key.count == 32, combined.count >= nonceBytes + tagBytes else { return nil }
        let bytes = [UInt8](combined)
        let nonce = Array(bytes[..<nonceBytes])
        let sealed = Array(bytes[nonceBytes...])
        var plain = [UInt8](repeating: 0, count: sealed.count - tagBytes)
        var length: UInt64 = 0
        let status = crypto_aead_chacha20poly1305_ietf_decrypt(
            &plain, &length, nil, sealed, UInt64(sealed.count), associated, UInt64(associated.count), nonce, key)
        guard status == 0 else { return nil }
        return Data(plain.prefix(Int(length)))
    }
}
