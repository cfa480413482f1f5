import Foundation
import Glibc
import Synchronization

/// Child processes run without blocking a thread of Swift's cooperative pool.
///
/// The pool has as many threads as cores (two here and in CI). A synchronous read of a pipe or
/// `waitUntilExit()` in async code takes one of them until the child ends; with both taken, an
/// in-process server the child talks to can never run and the suite stops for good. So nothing here
/// waits on the pool: each pipe is read to its end and the exit awaited on a thread of its own
/// (Foundation's readability handlers lost the end of a pipe here now and then, so plain threads),
/// and the caller is resumed when all three are done. Standard output and standard error are read at the same time, so a child that
/// fills one pipe while the other is being read to its end cannot deadlock.
package enum ChildProcess {
    /// What a finished child printed and how it ended.
    package struct Outcome: Sendable {
        package var status: Int32
        package var output: String
        package var errors: String
    }

    private struct Collected {
        var output = Data()
        var errors = Data()
        var outputDone = false
        var errorsDone = false
        var status: Int32?
        var resume: (@Sendable (Outcome) -> Void)?

        /// The outcome once both pipes are at their end and the process has exited.
        mutating func finished() -> ((Outcome) -> Void, Outcome)? {
            guard outputDone, errorsDone, let status, let resume else { return nil }
            self.resume = nil
            return (
                resume,
                Outcome(
                    status: status, output: String(decoding: output, as: UTF8.self),
                    errors: String(decoding: errors, as: UTF8.self))
            )
        }
    }

    /// Runs `executable` with `arguments` to its end and returns its status and output.
    ///
    /// Spawned with `posix_spawn`, not Foundation's `Process`: on Linux, `Process.run()` scans
    /// `/proc/self/fd` with a 256-byte copy of each directory entry and now and then reads past a
    /// mapped page and crashes the whole test process (swift-corelibs-foundation PR 5472; seen here
    /// as a SIGSEGV in `__memmove_avx_unaligned_erms` under `Process.run()`). The child's standard
    /// input is /dev/null; every descriptor above 2 is closed in it.
    package static func run(_ executable: String, _ arguments: [String]) async throws -> Outcome {
        let output = try Self.pipe()
        let errors = try Self.pipe()
        let pid: pid_t
        do {
            pid = try Self.spawn(
                executable, arguments, stdout: .descriptor(output.write), stderr: .descriptor(errors.write))
        } catch {
            for fd in [output.read, output.write, errors.read, errors.write] { close(fd) }
            throw error
        }
        close(output.write)
        close(errors.write)
        let state = Mutex(Collected())
        @Sendable func resumeIfFinished() {
            if let (resume, outcome) = state.withLock({ $0.finished() }) { resume(outcome) }
        }
        return await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
            state.withLock { $0.resume = { continuation.resume(returning: $0) } }
            // Three threads of their own, never the pool's: one reads each pipe to its end (so
            // neither pipe can fill while the other is read), one waits for the exit.
            Thread.detachNewThread {
                let data = FileHandle(fileDescriptor: output.read, closeOnDealloc: true).readDataToEndOfFile()
                state.withLock {
                    $0.output = data
                    $0.outputDone = true
                }
                resumeIfFinished()
            }
            Thread.detachNewThread {
                let data = FileHandle(fileDescriptor: errors.read, closeOnDealloc: true).readDataToEndOfFile()
                state.withLock {
                    $0.errors = data
                    $0.errorsDone = true
                }
                resumeIfFinished()
            }
            Thread.detachNewThread {
                var status: Int32 = 0
                while waitpid(pid, &status, 0) == -1, errno == EINTR {}
                state.withLock { $0.status = ChildProcess.exitCode(status) }
                resumeIfFinished()
            }
        }
    }

    /// A pipe whose ends are closed in every child but the one they are given to (close-on-exec,
    /// and every child closes what is above 2 anyway).
    private static func pipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        guard Glibc.pipe(&fds) == 0 else { throw ProcessFailure("pipe failed: errno \(errno)") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return (fds[0], fds[1])
    }

    /// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34), looked up at run time: the Glibc
    /// module does not declare it.
    private static let addCloseFrom:
        (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
            guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np")
            else { return nil }
            return unsafeBitCast(
                symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
        }()

    /// Where a child's standard output or error goes.
    package enum Target {
        case descriptor(Int32)
        /// A file, created 0600 if needed, appended to.
        case file(String)
        case null
    }

    /// Starts `executable` (standard input /dev/null, every descriptor above 2 closed) and
    /// returns its process id.
    package static func spawn(_ executable: String, _ arguments: [String], stdout: Target, stderr: Target) throws
        -> pid_t
    {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        for (fd, target) in [(Int32(1), stdout), (Int32(2), stderr)] {
            switch target {
            case .descriptor(let source): posix_spawn_file_actions_adddup2(&actions, source, fd)
            case .file(let path):
                posix_spawn_file_actions_addopen(&actions, fd, path, O_WRONLY | O_APPEND | O_CREAT, 0o600)
            case .null: posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", O_WRONLY, 0)
            }
        }
        if let addCloseFrom { _ = addCloseFrom(&actions, 3) }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard result == 0 else {
            throw ProcessFailure("cannot run \(executable): \(String(cString: strerror(result)))")
        }
        return pid
    }

    /// The exit status `waitpid` reported as Foundation's `Process.terminationStatus` gives it: the
    /// exit code, or the number of the signal that killed it.
    package static func exitCode(_ status: Int32) -> Int32 {
        (status & 0x7f) == 0 ? (status >> 8) & 0xff : status & 0x7f
    }

    /// Waits, without blocking a thread, until `process` has exited (polling every 20 ms, at most
    /// `seconds`); false when it is still running then.
    @discardableResult
    package static func waitForExit(_ process: SpawnedProcess, seconds: Int = 30) async throws -> Bool {
        for _ in 0..<(seconds * 50) where process.isRunning {
            try await Task.sleep(for: .milliseconds(20))
        }
        return !process.isRunning
    }
}

/// A child process started with `posix_spawn` (never Foundation's `Process`, see `ChildProcess`),
/// for tests that keep a node running: its id, whether it runs, its exit status, signals.
package final class SpawnedProcess: Sendable {
    package let processIdentifier: pid_t
    /// The exit status once reaped.
    private let exit = Mutex<Int32?>(nil)

    /// Starts `executable`; standard output and error go to `output` (appended) or /dev/null.
    package init(_ executable: String, _ arguments: [String], output: String? = nil) throws {
        let target: ChildProcess.Target = output.map { .file($0) } ?? .null
        processIdentifier = try ChildProcess.spawn(executable, arguments, stdout: target, stderr: target)
    }

    /// Whether it still runs (reaping it, without waiting, once it has ended).
    package var isRunning: Bool {
        exit.withLock { code in
            if code == nil {
                var status: Int32 = 0
                if waitpid(processIdentifier, &status, WNOHANG) == processIdentifier {
                    code = ChildProcess.exitCode(status)
                }
            }
            return code == nil
        }
    }

    /// Its exit status (-1 while it runs).
    package var terminationStatus: Int32 {
        _ = isRunning
        return exit.withLock { $0 } ?? -1
    }

    /// Sends SIGTERM.
    package func terminate() { kill(processIdentifier, SIGTERM) }

    deinit {
        if isRunning {
            kill(processIdentifier, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(processIdentifier, &status, 0)
        }
    }
}
