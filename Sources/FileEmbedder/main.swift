// Build tool of the EmbedTerraform and EmbedDashboards plugins: `FileEmbedder ENUM OUTPUT.swift FILE...` writes a
// Swift source in which `enum ENUM` holds the bytes of each file, base64-encoded (no escaping question can arise,
// and the compiler reads one string literal per file quickly).
import Foundation

let arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count >= 2, arguments[0].allSatisfy({ $0.isLetter || $0.isNumber }) else {
    FileHandle.standardError.write(Data("usage: FileEmbedder ENUM OUTPUT.swift FILE...\n".utf8))
    exit(64)
}
let name = arguments[0]
let output = arguments[1]
var source = """
    // Generated at build time by shoal's FileEmbedder. Do not edit.

    enum \(name) {
        /// The embedded files, sorted by name: (file name, base64 of its bytes).
        static let files: [(name: String, base64: String)] = [

    """
for path in arguments.dropFirst(2) {
    guard let data = FileManager.default.contents(atPath: path) else {
        FileHandle.standardError.write(Data("FileEmbedder: cannot read \(path)\n".utf8))
        exit(1)
    }
    let file = URL(fileURLWithPath: path).lastPathComponent
    source += "        (\"\(file)\", \"\(data.base64EncodedString())\"),\n"
}
source += "    ]\n}\n"
do {
    try Data(source.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
} catch {
    FileHandle.standardError.write(Data("FileEmbedder: cannot write \(output): \(error)\n".utf8))
    exit(1)
}
