import PropertyBased
import ShoalSupport
import Testing

@Suite struct DurationTests {
    @Test(arguments: [
        ("0", 0), ("2", 2000), ("2.5", 2500), ("500ms", 500), ("2s", 2000), ("1.5s", 1500), ("1m", 60_000),
        ("1m30s", 90_000), ("1h", 3_600_000), ("1h30m", 5_400_000), ("2m500ms", 120_500), ("1h0m1s", 3_601_000),
        ("0.0001s", 0), ("0.0005s", 1), ("1.123456789123s", 1123),
    ] as [(String, Int64)])
    func acceptsSimpleAndCompoundForms(text: String, milliseconds: Int64) throws {
        #expect(try ShoalDuration(parsing: text).duration == .milliseconds(milliseconds))
    }

    @Test(arguments: [
        "", "1e20", "1e300s", "0x10s", "-1s", "+1s", "1 s", " 1s", "1s ", "s", "ms", "1.s", ".5s", "1m30", "30s1m",
        "1s1s", "1ms1s", "1d", "inf", "nan", "1,5s", "１s", "9999999999999999999999s", "10000000h", "1h1h",
    ])
    func refusesEverythingElseWithAClearMessage(text: String) {
        #expect {
            try ShoalDuration(parsing: text)
        } throws: { error in
            guard let error = error as? ShoalError else { return false }
            return error.code == .invalidInput && error.message.contains("such as 500ms, 2s, 1m30s")
        }
        #expect(parseDuration(text) == nil)
    }

    @Test func refusesValuesBeyondAYear() {
        #expect(parseDuration("8784h") != nil)
        #expect(parseDuration("8785h") == nil)
        #expect(parseDuration("527040m1ms") == nil)
    }

    @Test func rangeCheckNamesTheOptionAndItsBounds() throws {
        let value = try ShoalDuration(parsing: "20ms")
        #expect {
            try value.check(in: .milliseconds(50) ... .seconds(60), option: "--heartbeat")
        } throws: { error in
            (error as? ShoalError)?.message == "--heartbeat must be between 50ms and 1m, got 20ms"
        }
        try ShoalDuration(parsing: "1m").check(in: .milliseconds(50) ... .seconds(60), option: "--heartbeat")
    }

    @Test func canonicalFormParsesBackToTheSameValue() async {
        await propertyCheck(count: 500, input: Gen.int64(in: 0...ShoalDuration.maximum.milliseconds)) { ms in
            let value = ShoalDuration(.milliseconds(ms))
            #expect(parseDuration(value.description) == .milliseconds(ms))
        }
    }

    @Test func arbitraryTextNeverTraps() async {
        let alphabet = Gen<Character?>.element(of: Array("0123456789.hmsx e+-")).compactMap { $0 }
        await propertyCheck(count: 2000, input: alphabet.string(of: 0...24)) { text in
            if let value = parseDuration(text) {
                #expect(value >= .zero && value <= ShoalDuration.maximum)
            }
        }
    }

    @Test func millisecondsSaturateInsteadOfTrapping() {
        #expect(Duration.seconds(Int64.max).milliseconds == .max)
        #expect(Duration.seconds(Int64.min).milliseconds == .min)
        #expect(Duration.milliseconds(1500).milliseconds == 1500)
    }
}
