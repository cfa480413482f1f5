import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Files only their owner may read: private keys, the phone-hash key, the databases (the edge's
/// holds the terminal tokens). Created 0600 from their first byte; a node refuses to start with
/// one that group or others can read (docs/operations.md, "Files and their modes").
package enum PrivateFiles {
    /// Writes `text` to `path` atomically, readable by its owner only (0600) from its first byte:
    /// a temporary file of that mode in the same folder, synced, then renamed into place, so no
    /// other local user can open it at any moment.
    package static func write(_ text: String, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent().appendingPathComponent(
            ".\(url.lastPathComponent).\(UUID().uuidString).tmp"
        ).path
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard descriptor >= 0 else { throw NodeFailure("cannot create \(temporary): errno \(errno)") }
        var failure: String?
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Foundation.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    failure = "cannot write \(temporary): errno \(errno)"
                    return
                }
                offset += written
            }
        }
        if failure == nil, fsync(descriptor) != 0 { failure = "cannot sync \(temporary): errno \(errno)" }
        close(descriptor)
        if failure == nil, rename(temporary, path) != 0 { failure = "cannot rename to \(path): errno \(errno)" }
        if let failure {
            unlink(temporary)
            throw NodeFailure(failure)
        }
    }

    /// Creates `path` (and its parents) as a folder only its owner may enter (0700), or makes an
    /// existing one so.
    package static func folder(_ path: String) throws {
        try FileManager.default.createDirectory(
            atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: path)
    }

    /// Creates `path` empty with mode 0600 when it does not exist (SQLite then gives its WAL and
    /// shared-memory files the same mode); an existing file is left as it is.
    package static func create(_ path: String) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        if descriptor >= 0 {
            close(descriptor)
        } else if errno != EEXIST {
            throw NodeFailure("cannot create \(path): errno \(errno)")
        }
    }

    /// Throws, naming the file and the fix, when `path` (`what` says what it is) can be read or
    /// written by group or others. A missing file is left to the caller.
    package static func requirePrivate(_ path: String, what: String) throws {
        var status = stat()
        guard stat(path, &status) == 0 else { return }
        let mode = status.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw NodeFailure(
                "\(what) \(path) can be read by other users (mode \(String(mode, radix: 8))): "
                    + "run `chmod 600 \(path)` and start again")
        }
    }
}
