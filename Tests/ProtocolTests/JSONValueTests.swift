import Foundation
import PropertyBased
import Protocol
import Testing

@Suite struct JSONValueTests {
    private func decode(_ text: String) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    }

    private func roundTrip(_ value: JSONValue) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(value))
    }

    @Test func integersBeyondDoublePrecisionComeBackUnchanged() throws {
        let big = (1 << 53) + 1
        let value = try decode("[\(big), \(Int.max), \(Int.min)]")
        #expect(value == [.integer(big), .integer(.max), .integer(.min)])
        #expect(value.arrayValue?.first?.intValue == big)
        #expect(try roundTrip(value) == value)
        let text = String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
        #expect(text == "[9007199254740993,9223372036854775807,-9223372036854775808]")
    }

    @Test func hugeAndFractionalNumbersNeverTrapAsIntegers() throws {
        for text in ["1e300", "-1e300", "1.5", "18446744073709551616", "1e19"] {
            let value = try decode(text)
            #expect(value.intValue == nil, "\(text)")
            #expect(value.doubleValue != nil, "\(text)")
        }
        #expect(try decode("3.0").intValue == 3)
        #expect(JSONValue.number(.infinity).intValue == nil)
        #expect(JSONValue.number(.nan).intValue == nil)
    }

    @Test func anIntegerEqualsTheSameDoubleAndHashesAlike() {
        #expect(JSONValue.integer(90) == JSONValue.number(90))
        #expect(JSONValue.number(90) == JSONValue.integer(90))
        #expect(JSONValue.integer(90) != JSONValue.number(90.5))
        #expect(Set<JSONValue>([.integer(90), .number(90)]).count == 1)
        let literal: JSONValue = ["score": 90]
        #expect(literal["score"] == .number(90))
    }

    @Test func everyIntegerRoundTrips() async {
        await propertyCheck(count: 1000, input: Gen.int()) { number in
            let back = try? roundTrip(.integer(number))
            #expect(back == .integer(number))
            #expect(back?.intValue == number)
        }
    }

    @Test func everyFiniteDoubleRoundTripsAndIntValueNeverTraps() async {
        await propertyCheck(count: 1000, input: Gen.double(in: -10...10), Gen.int(in: -300...300)) { mantissa, exponent in
            let number = mantissa * pow(10, Double(exponent))
            let back = try? roundTrip(.number(number))
            #expect(back?.doubleValue == number)
            #expect(back?.intValue == Int(exactly: number))
        }
    }
}
