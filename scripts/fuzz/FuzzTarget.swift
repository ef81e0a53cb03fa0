// The libFuzzer entry point of `make fuzz`, compiled by scripts/fuzz.sh together with the sources it exercises.
// The first input byte picks the target; the rest is the input. A crash, a trap or a failed `precondition` is a
// finding: every path here must reject bad input with an error, never trap.
import Foundation
import Yams

/// Input bytes split into frames at 0xFE, as several ZeroMQ frames of one message.
private func frames(_ bytes: ArraySlice<UInt8>) -> [[UInt8]] {
    bytes.split(separator: 0xFE, omittingEmptySubsequences: false).map(Array.init)
}

/// The frame decoder: the header, then every body type a peer may send.
private func fuzzFrames(_ bytes: ArraySlice<UInt8>) {
    guard let envelope = try? Codec.decode(frames(bytes)[...]) else { return }
    _ = try? envelope.decode(Hello.self)
    _ = try? envelope.decode(StepResult.self)
    _ = try? envelope.decode(StepAssignment.self)
    _ = try? envelope.decode(Heartbeat.self)
    _ = try? envelope.decode(Submit.self)
    _ = try? KeyList.decode(envelope.body)
    _ = try? StepBatch.decode(envelope.body, workflow: envelope.header.workflow ?? "w")
    _ = envelope.header.stepKey?.description
    // What shoal writes directly must read back: the header, and a result body that decodes.
    _ = FastHeader.parse(envelope.header.compactJSON)
    if let result = try? envelope.decode(StepResult.self) {
        precondition(
            (try? JSONDecoder().decode(StepResult.self, from: Data(result.compactJSON))) != nil,
            "a result written directly reads back")
    }
    // The quick readers agree with JSONDecoder on whatever they accept.
    let body = Data(envelope.body)
    if let quick = JSONReader.parse(envelope.body) {
        precondition(quick == (try? JSONDecoder().decode(JSONValue.self, from: body)), "a quick value reads the same")
    }
    if let quick = StepResult.quick(envelope.body) {
        precondition(quick == (try? JSONDecoder().decode(StepResult.self, from: body)), "a quick result reads the same")
    }
    if let quick = KeyList.quick(envelope.body) {
        precondition(quick == (try? JSONDecoder().decode(KeyList.self, from: body)), "a quick key list reads the same")
    }
    if let quick = Heartbeat.quick(envelope.body) {
        precondition(quick == (try? JSONDecoder().decode(Heartbeat.self, from: body)), "a quick heartbeat reads the same")
    }
    var requests = RequestCache()
    if let quick = StepAssignment.quick(envelope.body, requests: &requests) {
        precondition(
            quick == (try? JSONDecoder().decode(StepAssignment.self, from: body)), "a quick assignment reads the same")
    }
    if let quick = StepBatch.quick(envelope.body, requests: &requests) {
        precondition(quick == (try? JSONDecoder().decode(StepBatch.self, from: body)), "a quick batch reads the same")
    }
    if let event = try? envelope.decode(WorkflowEvent.self) {
        precondition(
            (try? JSONDecoder().decode(WorkflowEvent.self, from: Data(event.compactJSON))) == event,
            "an event written directly reads back equal")
    }
    if let step = try? envelope.decode(StepSnapshot.self) {
        precondition(
            (try? JSONDecoder().decode(StepSnapshot.self, from: Data(step.compactJSON))) == step,
            "a step written directly reads back equal")
    }
}

/// The request decoder: a workflow request as `submit` carries it, its checks, and any JSON value in it.
private func fuzzRequest(_ bytes: ArraySlice<UInt8>) {
    let data = Data(bytes)
    if let request = try? JSONDecoder().decode(WorkflowRequest.self, from: data) {
        _ = request.problems()
        _ = request.inputProblems()
    }
    if let quick = JSONReader.parse(bytes) {
        precondition(quick == (try? JSONDecoder().decode(JSONValue.self, from: data)), "a quick value reads the same")
    }
    if let value = try? JSONDecoder().decode(JSONValue.self, from: data) {
        _ = value.intValue
        _ = value.doubleValue
        _ = try? JSONEncoder().encode(value)
    }
}

/// The YAML parser, as shoal reads manifests, kubectl output and kubeconfigs with it: composed into nodes and
/// walked. (Yams' `load`, which builds `[AnyHashable: Any]`, traps on a mapping key that is not a string; shoal
/// never calls it on input.)
private func fuzzYAMLParser(_ bytes: ArraySlice<UInt8>) {
    let text = String(decoding: bytes, as: UTF8.self)
    guard var documents = try? Yams.compose_all(yaml: text) else { return }
    var budget = 10_000
    func walk(_ node: Node) {
        budget -= 1
        guard budget > 0 else { return }
        switch node {
        case .scalar(let scalar): _ = (scalar.string, node.int, node.bool, node.float, node.tag.description)
        case .mapping(let mapping): for (key, value) in mapping { walk(key); walk(value) }
        case .sequence(let sequence): for item in sequence { walk(item) }
        case .alias: break
        }
    }
    while budget > 0, let document = documents.next() { walk(document) }
    _ = try? Yams.compose(yaml: text).map { try Yams.serialize(node: $0) }
}

/// shoal's YAML writer against that parser: any text, as a scalar and as a block, must read back unchanged.
private func fuzzYAMLWriter(_ bytes: ArraySlice<UInt8>) {
    var text = String(decoding: bytes, as: UTF8.self)
    // Yams drops a leading byte order mark when it makes a Swift string (the writer escapes it all the same).
    if text.unicodeScalars.first == "\u{FEFF}" { text = "x" + text }
    let document: YAML = ["key": .string(text), "block": .block(text), "list": [.string(text), .block(text)]]
    let yaml = document.document()
    guard let parsed = (try? Yams.load(yaml: yaml)) as? [String: Any] else {
        fatalError("the writer produced YAML the parser refuses: \(yaml.debugDescription)")
    }
    let list = parsed["list"] as? [Any]
    guard parsed["key"] as? String == text, parsed["block"] as? String == text, list?.first as? String == text,
        list?.last as? String == text
    else {
        fatalError("\(text.debugDescription) did not read back from \(yaml.debugDescription)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func shoalFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data, size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let input = bytes[1...]
    switch bytes[0] % 4 {
    case 0: fuzzFrames(input)
    case 1: fuzzRequest(input)
    case 2: fuzzYAMLParser(input)
    default: fuzzYAMLWriter(input)
    }
    return 0
}
