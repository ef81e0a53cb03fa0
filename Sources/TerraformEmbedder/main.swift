// Build tool of the EmbedTerraform plugin: `TerraformEmbedder OUTPUT.swift FILE.tf...` writes a Swift source
// with the bytes of each file, base64-encoded (no escaping question can arise, and the compiler reads one
// string literal per file quickly).
import Foundation

let arguments = CommandLine.arguments.dropFirst()
guard let output = arguments.first else {
    FileHandle.standardError.write(Data("usage: TerraformEmbedder OUTPUT.swift FILE.tf...\n".utf8))
    exit(64)
}
var source = """
    // Generated at build time by the EmbedTerraform plugin from terraform/*.tf. Do not edit.

    enum EmbeddedTerraform {
        /// The configuration's files, sorted by name: (file name, base64 of its bytes).
        static let files: [(name: String, base64: String)] = [

    """
for path in arguments.dropFirst() {
    guard let data = FileManager.default.contents(atPath: path) else {
        FileHandle.standardError.write(Data("TerraformEmbedder: cannot read \(path)\n".utf8))
        exit(1)
    }
    let name = URL(fileURLWithPath: path).lastPathComponent
    source += "        (\"\(name)\", \"\(data.base64EncodedString())\"),\n"
}
source += "    ]\n}\n"
do {
    try Data(source.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
} catch {
    FileHandle.standardError.write(Data("TerraformEmbedder: cannot write \(output): \(error)\n".utf8))
    exit(1)
}
