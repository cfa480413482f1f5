import Foundation

/// Reads a file an operator named (a config, a program, a key), with a failure that says what is
/// wrong in words ("no such file", "permission denied"), not a Foundation error dump.
package enum ReadableFile {
    /// The file's bytes. Throws `ReadableFile.Failure` naming the path and the reason.
    package static func contents(of path: String) throws(Failure) -> Data {
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        guard manager.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw Failure(path: path, reason: "no such file")
        }
        guard !isDirectory.boolValue else { throw Failure(path: path, reason: "it is a directory, not a file") }
        guard manager.isReadableFile(atPath: path) else { throw Failure(path: path, reason: "permission denied") }
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw Failure(path: path, reason: "it could not be read")
        }
    }

    /// Why a file could not be read.
    package struct Failure: Error, CustomStringConvertible {
        package let path: String
        package let reason: String
        package var description: String { "cannot read \(path): \(reason)" }
    }
}
