import Foundation

/// Splits a SQL script into statements at top-level semicolons, respecting quoted strings,
/// quoted identifiers, dollar-quoted bodies and comments. PostgresNIO runs one statement per
/// query, and migration files hold many.
enum SQLScript {
    static func statements(_ script: String) -> [String] {
        let characters = Array(script.unicodeScalars)
        var statements: [String] = []
        var current = String.UnicodeScalarView()
        var index = 0

        func flush() {
            let text = String(current).trimmingCharacters(in: .whitespacesAndNewlines)
            if !text.isEmpty, !isOnlyComments(text) { statements.append(text) }
            current = String.UnicodeScalarView()
        }

        while index < characters.count {
            let character = characters[index]
            let next = index + 1 < characters.count ? characters[index + 1] : nil
            switch character {
            case "'", "\"":
                // Quoted text; a doubled quote is an escaped quote and simply continues the scan.
                current.append(character)
                index += 1
                while index < characters.count {
                    current.append(characters[index])
                    if characters[index] == character { break }
                    index += 1
                }
                index += 1
            case "-" where next == "-":
                while index < characters.count, characters[index] != "\n" {
                    current.append(characters[index])
                    index += 1
                }
            case "/" where next == "*":
                var depth = 0
                repeat {
                    if characters[index] == "/", index + 1 < characters.count, characters[index + 1] == "*" {
                        depth += 1
                        current.append(contentsOf: "/*".unicodeScalars)
                        index += 2
                    } else if characters[index] == "*", index + 1 < characters.count, characters[index + 1] == "/" {
                        depth -= 1
                        current.append(contentsOf: "*/".unicodeScalars)
                        index += 2
                    } else {
                        current.append(characters[index])
                        index += 1
                    }
                } while depth > 0 && index < characters.count
            case "$":
                // $tag$ ... $tag$ (tag may be empty).
                var end = index + 1
                while end < characters.count, characters[end] == "_" || characters[end].properties.isAlphabetic || ("0"..."9").contains(characters[end]) {
                    end += 1
                }
                guard end < characters.count, characters[end] == "$" else {
                    current.append(character)
                    index += 1
                    continue
                }
                let tag = Array(characters[index...end])
                current.append(contentsOf: tag)
                index = end + 1
                while index < characters.count {
                    if characters[index] == "$", index + tag.count <= characters.count, Array(characters[index..<(index + tag.count)]) == tag {
                        current.append(contentsOf: tag)
                        index += tag.count
                        break
                    }
                    current.append(characters[index])
                    index += 1
                }
            case ";":
                flush()
                index += 1
            default:
                current.append(character)
                index += 1
            }
        }
        flush()
        return statements
    }

    private static func isOnlyComments(_ text: String) -> Bool {
        text.split(separator: "\n").allSatisfy { $0.trimmingCharacters(in: .whitespaces).hasPrefix("--") || $0.trimmingCharacters(in: .whitespaces).isEmpty }
    }
}
