import Foundation
import ShoalSupport
import Testing

@Suite struct HeapTrimmerTests {
    /// This process's resident bytes.
    private func resident() -> Int {
        let fields = ((try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? "").split(separator: " ")
        return (fields.count > 1 ? Int(fields[1]) ?? 0 : 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// As connections' buffers are: many small blocks allocated on a thread of their own, freed but for a few
    /// that keep the holes between them from being cut off the heap's top.
    @Test func memoryFreedInHolesGoesBackToTheSystemAtTheNextCheck() throws {
        let chunk = 8 << 10
        let count = 200 << 20 / chunk
        let kept = Locked<[UnsafeMutableRawPointer]>([])
        let done = DispatchSemaphore(value: 0)
        Thread {
            var blocks: [UnsafeMutableRawPointer] = []
            blocks.reserveCapacity(count)
            for _ in 0..<count {
                let block = malloc(chunk)!
                memset(block, 1, chunk)
                blocks.append(block)
            }
            var keep: [UnsafeMutableRawPointer] = []
            for (index, block) in blocks.enumerated() {
                if index % 64 == 63 { keep.append(block) } else { free(block) }
            }
            kept.value = keep
            done.signal()
        }.start()
        done.wait()
        defer { kept.value.forEach { free($0) } }

        var trimmer = HeapTrimmer(interval: .seconds(60), threshold: 64 << 20)
        let early = trimmer.tick()
        #expect(early == nil, "not before its interval")
        let before = resident()
        let trimmed = trimmer.tick(now: .now + .seconds(61))
        let after = resident()
        let released = try #require(trimmed, "more than the threshold is free")
        #expect(released >= 150 << 20)
        #expect(before - after >= 100 << 20, "resident \(before >> 20) MiB, then \(after >> 20) MiB")
        let again = trimmer.tick(now: .now + .seconds(62))
        #expect(again == nil, "not again within its interval")
    }
}
