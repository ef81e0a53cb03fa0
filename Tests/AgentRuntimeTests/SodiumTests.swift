import Crypto
import Foundation
import Testing

@testable import AgentRuntime

/// The agent's libsodium primitives agree with swift-crypto's, so digests match the coordinator's and an
/// idempotency record sealed by an earlier agent still opens.
@Suite struct SodiumTests {
    private func bytes(_ count: Int, seed: UInt8) -> Data {
        Data((0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) })
    }

    @Test func sha256MatchesSwiftCrypto() {
        for count in [0, 1, 55, 56, 64, 1000, 70_000] {
            let data = bytes(count, seed: UInt8(count % 251))
            let expected = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
            #expect(Sodium.sha256Hex(data) == expected)
            #expect(ArtifactCache.digest(data) == expected)
        }
    }

    @Test func theRecordKeyIsSwiftCryptosHKDF() {
        let secret = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
        let expected = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: Data(secret.utf8)), info: Data("shoal idempotency record".utf8),
            outputByteCount: 32
        ).withUnsafeBytes { [UInt8]($0) }
        #expect(Sodium.hkdfSHA256(inputKeyMaterial: Array(secret.utf8), info: Array("shoal idempotency record".utf8)) == expected)
    }

    @Test func sealedLinesOpenBothWays() throws {
        let key = Sodium.randomKey()
        let plain = bytes(3000, seed: 7)
        let associated = Array("wf-1/validate/2".utf8)
        // Written by swift-crypto (as agents before the lean runtime did), read by libsodium.
        let old = try ChaChaPoly.seal(plain, using: SymmetricKey(data: key), authenticating: Data(associated)).combined
        #expect(Sodium.open(old, key: key, authenticating: associated) == plain)
        // And the other way round.
        let new = try #require(Sodium.seal(plain, key: key, authenticating: associated))
        let box = try ChaChaPoly.SealedBox(combined: new)
        #expect(try ChaChaPoly.open(box, using: SymmetricKey(data: key), authenticating: Data(associated)) == plain)
        // Another key, other associated data or a flipped byte do not open.
        #expect(Sodium.open(new, key: Sodium.randomKey(), authenticating: associated) == nil)
        #expect(Sodium.open(new, key: key, authenticating: Array("wf-1/validate/3".utf8)) == nil)
        var damaged = new
        damaged[20] ^= 1
        #expect(Sodium.open(damaged, key: key, authenticating: associated) == nil)
        #expect(Sodium.open(Data(new.prefix(27)), key: key, authenticating: associated) == nil)
    }
}
