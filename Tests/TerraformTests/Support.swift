import Foundation
import ShoalSupport
import Testing

/// A directory removed when the value is released.
final class TemporaryDirectory: Sendable {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.path + "/shoal-terraform-test-" + UUID().uuidString
        try SecureFile.createDirectory(path, mode: 0o700)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Whether the terraform CLI can be used. Without it, the test fails when `CI` is set and is
/// otherwise skipped with a message saying so.
func terraformAvailable(_ test: String = #function) -> Bool {
    if ProcessRunner.locate("terraform") != nil { return true }
    if ProcessInfo.processInfo.environment["CI"] != nil {
        Issue.record("terraform is not installed but CI is set: install terraform 1.10 or newer")
    } else {
        print("SKIPPED \(test): terraform is not installed (install terraform 1.10 or newer to run it)")
    }
    return false
}

/// Every regular file under `directory`, recursively, with its bytes.
func allFiles(under directory: String) -> [(path: String, data: Data)] {
    guard let enumerator = FileManager.default.enumerator(atPath: directory) else { return [] }
    var files: [(path: String, data: Data)] = []
    while let relative = enumerator.nextObject() as? String {
        let path = "\(directory)/\(relative)"
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
            let data = FileManager.default.contents(atPath: path)
        else { continue }
        files.append((path, data))
    }
    return files
}

extension Data {
    func contains(_ text: String) -> Bool {
        range(of: Data(text.utf8)) != nil
    }
}
