import CrewTestHelpers
import Foundation
import Testing

/// Every public declaration of the libraries carries a `///` comment (the executables are not libraries).
@Suite struct DocumentationTests {
    @Test func everyPublicSymbolIsDocumented() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let sources = root.appendingPathComponent("Sources")
        let files = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)!
            .compactMap { $0 as? URL }
            .filter {
                $0.pathExtension == "swift" && !$0.path.contains("/crew-demo/") && !$0.path.contains("/crew-bench/")
            }
        #expect(!files.isEmpty)
        var undocumented: [String] = []
        let declaration = try Regex(#"^(@[\w]+(\([^)]*\))?\s+)*public\s+(?!import)"#)
        for file in files {
            let lines = try String(contentsOf: file, encoding: .utf8).components(separatedBy: "\n")
            for (i, line) in lines.enumerated() {
                let text = line.trimmingCharacters(in: .whitespaces)
                guard text.firstMatch(of: declaration) != nil else { continue }
                var j = i - 1
                while j >= 0, lines[j].trimmingCharacters(in: .whitespaces).hasPrefix("@") { j -= 1 }
                if j < 0 || !lines[j].trimmingCharacters(in: .whitespaces).hasPrefix("///") {
                    undocumented.append("\(file.lastPathComponent):\(i + 1): \(text)")
                }
            }
        }
        #expect(undocumented.isEmpty, "undocumented public declarations:\n\(undocumented.joined(separator: "\n"))")
    }
}
