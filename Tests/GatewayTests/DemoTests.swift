// Goal: `coalition demo`, the first thing a newcomer runs, works from the built binary: it exits 0
// and shows the overdraft resolved, the duplicate receipt refused, and a statement whose nets sum
// to zero with the platform.
import Foundation
import Gateway
import TestSupport
import Testing

@Suite("Demo")
struct DemoTests {
    @Test("coalition demo plays the day and closes the settlement")
    func demo() async throws {
        let directory = try TemporaryDirectory()
        let output = try await Binary.run([
            "demo", "--dir", directory.path("demo"), "--program", Repository.exampleProgram.path,
        ])
        #expect(output.contains("offline_overdraw at hotel-01"))
        #expect(output.contains("Li's balance is 0 at the mall, the hotel and the car park"))
        #expect(output.contains("the same answer both times (transaction unchanged)"))
        #expect(output.contains("is refused: alreadyExists"))
        #expect(output.contains("merchants' nets + platform = 0"))
        #expect(FileManager.default.fileExists(atPath: directory.path("demo/settlement-2026-11-28.json")))
        // The points mall (#16): a voucher bought, a flash sale sold exactly, a lottery draw, the
        // voucher honoured once at the hotel's offline till and booked at the gateway afterwards.
        #expect(output.contains("the app's retry gets the same order (unchanged)"))
        #expect(output.contains("8 orders at once: 3 answered OK, the ledger counts 3 sold"))
        #expect(output.contains("Wang draws in the winter lucky draw for 200 points: draw winter-draw/2026-11-29/1"))
        #expect(output.contains("scanned again at the till: refused VOUCHER_USED"))
        #expect(output.contains("is refused: VOUCHER_FORGED"))
        #expect(output.contains("the gateway books Wang's tea voucher used at hotel-01 by hotel-restaurant"))
        // The folder keeps the demo's files; a second run there is refused rather than mixed in.
        await #expect(throws: ProcessFailure.self) {
            try await Binary.run(["demo", "--dir", directory.path("demo"), "--program", Repository.exampleProgram.path])
        }

        // `coalition admin` works on the demo's ledger through its gateway, with operator alice's certificate.
        try? FileManager.default.removeItem(atPath: directory.path("demo/gateway.port"))
        let gateway = try SpawnedProcess(
            try #require(Binary.path), ["gateway", "serve", "--config", directory.path("demo/gateway.yaml")])
        defer { if gateway.isRunning { kill(gateway.processIdentifier, SIGKILL) } }
        for _ in 0..<200 where !FileManager.default.fileExists(atPath: directory.path("demo/gateway.port")) {
            try await Task.sleep(for: .milliseconds(50))
        }
        let admin = directory.path("demo/admin.yaml")
        let statement = try await Binary.run(["admin", "settle", "show", "--config", admin, "--period", "2026-11-28"])
        #expect(statement.contains("journal: debits"))
        #expect(statement.contains("risk charge") && statement.contains("money in minor units"))
        #expect(statement.contains("closed by "))
        #expect(statement.contains("hotel-rooms"))
        #expect(statement.contains("base pts") && statement.contains("bonus pts"))
        // The export writes the statement, the CSV, the manifest and one file per merchant (#14 item 2).
        let out = directory.path("statements")
        _ = try await Binary.run([
            "admin", "settle", "export", "--config", admin, "--period", "2026-11-28", "--out", out,
        ])
        let manifest = try String(contentsOfFile: out + "/2026-11-28.manifest.txt", encoding: .utf8)
        #expect(manifest.contains("  2026-11-28.json\n") && manifest.contains("  2026-11-28/hotel-rooms.csv\n"))
        let rooms = try String(contentsOfFile: out + "/2026-11-28/hotel-rooms.csv", encoding: .utf8)
        #expect(rooms.hasPrefix("statement,settlement of merchant hotel-rooms for 2026-11-28\n"))
        let conflicts = try await Binary.run(["admin", "conflicts", "--config", admin, "--json"])
        #expect(conflicts.contains("\"kind\":\"offline_overdraw\""))
        // A demo shows only what a real day would: no clock_skew from its own clock moves (#14 item 18).
        #expect(!conflicts.contains("clock_skew"))
        let member = try await Binary.run(["admin", "member", "show", "--config", admin, "+8613800000001"])
        #expect(member.contains("balance 0"))
        // Sites revoked and reinstated, certificates listed, from the command line (#14 item 11).
        #expect(try await Binary.run(["admin", "sites", "--config", admin]).contains("hotel-01"))
        let revoked = try await Binary.run([
            "admin", "sites", "revoke", "hotel-01", "--config", admin, "--reason", "refit",
        ])
        #expect(revoked.contains("site hotel-01 is revoked"))
        let back = try await Binary.run([
            "admin", "sites", "reinstate", "hotel-01", "--config", admin, "--reason", "open",
        ])
        #expect(back.contains("site hotel-01 is active"))
        #expect(try await Binary.run(["admin", "certificates", "list", "--config", admin]).contains("serial"))
        // Expiry run twice for the same day says the second time that nothing more was due.
        let expire = ["admin", "expire", "run", "--config", admin, "--as-of", "2026-01-01"]
        #expect(try await Binary.run(expire).contains("expiry as of the end of 2026-01-01: nothing was due"))
        #expect(try await Binary.run(expire).contains("had already run: nothing more was due"))
        gateway.terminate()
        #expect(try await ChildProcess.waitForExit(gateway))
    }

    /// Issue #15: the same day on a PostgreSQL ledger (a new database of the test server).
    @Test("coalition demo --store postgres://… plays the day on PostgreSQL and closes the settlement")
    func demoOnPostgres() async throws {
        let directory = try TemporaryDirectory()
        let server = try TestPostgres.admin()
        let output = try await Binary.run([
            "demo", "--dir", directory.path("demo"), "--program", Repository.exampleProgram.path, "--store",
            server.description,
        ])
        #expect(output.contains("The gateway's ledger is the PostgreSQL database"))
        #expect(output.contains("offline_overdraw at hotel-01"))
        #expect(output.contains("Li's balance is 0 at the mall, the hotel and the car park"))
        #expect(output.contains("merchants' nets + platform = 0"))
        #expect(FileManager.default.fileExists(atPath: directory.path("demo/settlement-2026-11-28.json")))
        let config = try String(contentsOfFile: directory.path("demo/gateway.yaml"), encoding: .utf8)
        let url = try #require(config.split(separator: "\n").first { $0.hasPrefix("database: ") })
            .dropFirst("database: ".count)
        let name = try #require(url.split(separator: "/").last).description
        #expect(
            try await TestPostgres.strings(server, "SELECT datname FROM pg_database WHERE datname = '\(name)'") == [
                name
            ])
        try await TestPostgres.sql(server, "DROP DATABASE \(name) WITH (FORCE)")
    }
}
