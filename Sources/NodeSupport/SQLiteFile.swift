import Foundation
import GRDB

/// Opening and copying the SQLite files of both nodes: one `DatabasePool` (WAL) per file with the
/// settings written out, never the library's defaults.
package enum SQLiteFile {
    /// Settings of one file.
    package struct Settings: Sendable {
        /// How long a connection waits for the write lock.
        package var busyTimeoutMilliseconds: Int
        /// Page cache per connection, in KiB (SQLite's default when nil).
        package var cacheKibibytes: Int?
        /// The most the file may grow to, in bytes (0: no limit); past it a write fails with
        /// SQLITE_FULL.
        package var bytesMax: Int64 = 0

        package init(busyTimeoutMilliseconds: Int, cacheKibibytes: Int? = nil, bytesMax: Int64 = 0) {
            self.busyTimeoutMilliseconds = busyTimeoutMilliseconds
            self.cacheKibibytes = cacheKibibytes
            self.bytesMax = bytesMax
        }
    }

    /// Opens (creating if needed, mode 0600) a pool on `path`: WAL, `synchronous=FULL`, foreign
    /// keys on, the busy timeout, cache and size limit of `settings`. A file that other users can
    /// read is refused (it holds members' data, and the edge's the terminal tokens).
    package static func open(path: String, label: String, settings: Settings) throws -> DatabasePool {
        try PrivateFiles.create(path)
        try PrivateFiles.requirePrivate(path, what: "the database")
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(TimeInterval(settings.busyTimeoutMilliseconds) / 1000)
        configuration.label = label
        let cache = settings.cacheKibibytes
        let bytesMax = settings.bytesMax
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            if let cache { try db.execute(sql: "PRAGMA cache_size = -\(cache)") }
            if bytesMax > 0 {
                // The WAL and its index count against the limit: the WAL gets `walBytes(of:)`,
                // checkpointed when a quarter full and truncated back to it, the index (`-shm`) 32 KiB;
                // the main file (4096-byte pages) gets the rest, past which SQLite answers
                // SQLITE_FULL. A WAL frame is a page plus its 24-byte header and the WAL has a
                // 32-byte header of its own: counting pages alone, a WAL that grew to twice the
                // checkpoint point while a reader held it stood 416 bytes over a 512 KiB cap.
                let wal = walBytes(of: bytesMax)
                try db.execute(sql: "PRAGMA max_page_count = \(max(1, (bytesMax - wal - 32_768) / 4096))")
                try db.execute(sql: "PRAGMA journal_size_limit = \(wal)")
                try db.execute(sql: "PRAGMA wal_autocheckpoint = \(walCheckpointFrames(of: wal))")
            }
        }
        let pool = try DatabasePool(path: path, configuration: configuration)
        // GRDB sets synchronous = NORMAL on the writer when it enables WAL, after prepareDatabase
        // ran; an answer must mean durable, so FULL is set again on the writer (read back by a test).
        try pool.barrierWriteWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        return pool
    }

    /// The part of a size limit kept for the WAL: an eighth, at least 64 KiB, at most 4 MiB.
    package static func walBytes(of bytesMax: Int64) -> Int64 {
        min(4 * 1024 * 1024, max(64 * 1024, bytesMax / 8))
    }

    /// The WAL's checkpoint point for a WAL budget of `walBytes`: a quarter of the frames (page
    /// plus 24-byte frame header, after the 32-byte WAL header) that fit in it, at least 4. The
    /// rest is headroom for the commit that crosses the point and for frames written while a reader
    /// holds the WAL: with half, one group commit of many pages took a 64 KiB WAL to 18 frames where
    /// 15 fit (8,656 bytes over a 512 KiB cap, once in CI).
    package static func walCheckpointFrames(of walBytes: Int64) -> Int64 {
        max(4, (walBytes - 32) / (4096 + 24) / 4)
    }

    /// Copies `pool` to `path` with SQLite's online backup, from one read snapshot: writers go on
    /// meanwhile and the copy is consistent (every transaction committed before the snapshot, none
    /// after). The copy is checked (`PRAGMA quick_check`) and then moved into place; an existing
    /// file at `path` is refused. Restore by stopping the node and putting the copy in place of its
    /// database file.
    package static func backup(_ pool: DatabasePool, to path: String) throws {
        guard !FileManager.default.fileExists(atPath: path) else {
            throw NodeFailure("\(path) exists; choose a new file for the backup")
        }
        let partial = path + ".partial"
        try? FileManager.default.removeItem(atPath: partial)
        try PrivateFiles.create(partial)
        let destination = try DatabaseQueue(path: partial)
        try pool.backup(to: destination)
        let check = try destination.read { db in try String.fetchOne(db, sql: "PRAGMA quick_check") }
        try destination.close()
        guard check == "ok" else {
            throw NodeFailure("the backup failed its integrity check: \(check ?? "no answer")")
        }
        try FileManager.default.moveItem(atPath: partial, toPath: path)
    }
}
