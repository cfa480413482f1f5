import Core
import Crypto
import EdgeNode
import Foundation
import GRDB
import GRPCCore
import Gateway
import LocalNetwork
import NodeSupport
import SwiftProtobuf
import Wire

extension EdgeBenches {
    /// A voucher honoured at a till with the gateway unreachable: the till scans it (`Check`), then
    /// honours it (`Redeem`, a durable outbox write); each request a new voucher signed by a key the
    /// edge had pulled. Baseline: two empty RPCs of the same sizes on the same server.
    package static func voucherCheck(program: String, duration: Duration, rate: Double) async throws {
        let folder = try BenchFolder(program: program)
        try folder.issue(.site(SiteID("mall-01")!), name: "mall-01")
        let key = Curve25519.Signing.PrivateKey()
        let start = SystemWallClock().now()
        try await TLSBenchEdge.with(
            folder: folder, site: "mall-01", merchant: "mall-cafe", terminals: 4, baselineResponseBytes: 160,
            prepare: { configuration in
                // Linked to a gateway that does not answer (a closed port), after having pulled the
                // network's voucher key from it once.
                configuration.gateway = GatewayLink(
                    host: "127.0.0.1", port: 9, caCertificatePath: folder.path + "/ca.pem",
                    certificatePath: folder.path + "/mall-01.pem", privateKeyPath: folder.path + "/mall-01.key")
                let database = try EdgeDatabase.open(
                    path: configuration.databasePath, site: configuration.siteID, limits: configuration.limits,
                    now: start)
                try database.pool.write { db in
                    try db.execute(
                        sql: "UPDATE sync_state SET last_gateway_contact_ms = ? WHERE id = 1",
                        arguments: [start.milliseconds])
                    try db.execute(
                        sql: "INSERT INTO voucher_keys (key_id, public_key) VALUES (1, ?)",
                        arguments: [key.publicKey.rawRepresentation])
                }
                try database.pool.close()
            }
        ) { edge in
            let until = start.adding(milliseconds: 30 * 86_400_000)
            @Sendable func code(_ index: Int) throws -> String {
                var generator = SystemRandomNumberGenerator()
                let claim = VoucherClaim(
                    keyID: 1, voucherID: TransactionID(time: start, using: &generator), item: ItemID("coffee")!,
                    validUntil: until)
                return try VoucherSeal.sign(claim, with: key).text
            }
            @Sendable func honour(_ index: Int) async throws {
                let token = edge.tokens[index % edge.tokens.count]
                var check = Coalition_Edge_V1_CheckVoucherRequest()
                check.code = try code(index)
                let checked = try await edge.vouchers.check(check, metadata: token)
                var use = Coalition_Edge_V1_RedeemVoucherRequest()
                use.requestID = "V-\(index)"
                use.code = check.code
                let used = try await edge.vouchers.redeem(use, metadata: token)
                guard used.voucher == checked else { throw BenchFailure("the use names another voucher than the check") }
            }
            var sample = Coalition_Edge_V1_RedeemVoucherRequest()
            sample.requestID = "V-1000000"
            sample.code = try code(0)
            let bytes = try sample.serializedBytes() as [UInt8]
            _ = await Load.openLoop(rate: rate, duration: .milliseconds(500)) { try await honour(1_000_000 + $0) }
            let baseline = await Load.openLoop(rate: rate, duration: duration) { _ in
                try await edge.client.echo(bytes)
                try await edge.client.echo(bytes)
            }
            let figure = await Load.openLoop(rate: rate, duration: duration) { try await honour($0) }
            var report = BenchReport(
                name: "voucher-check",
                settings:
                    "\(Int(rate)) vouchers/s offered for \(Int(Load.seconds(duration))) s, gateway unreachable, TLS on loopback"
            )
            report.line("baseline", "two empty RPCs per voucher: \(baseline.summary)")
            report.line(
                "figure", "check + redeem: \(figure.summary) (\(figure.count) vouchers, \(figure.errors) errors)")
            report.line(
                "ratio",
                String(
                    format: "p50 %.2f×, p99 %.2f× the baseline",
                    figure.milliseconds(50) / max(0.001, baseline.milliseconds(50)),
                    figure.milliseconds(99) / max(0.001, baseline.milliseconds(99))))
            if let error = figure.firstError { report.line("first error", error) }
            report.ceiling(
                "p99 voucher", figure.count == 0 || figure.errors > 0 ? .infinity : figure.milliseconds(99),
                maximum: 20, unit: "ms")
            report.line("memory", String(format: "peak %.0f MiB", Load.peakMemoryMiB))
            report.print()
        }
    }
}
