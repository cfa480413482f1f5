// Goal (DESIGN §8, §11): bytes that are not a valid request — truncated or bit-flipped bodies —
// get a status that is never UNKNOWN or INTERNAL, a refused one writes nothing, and the server
// keeps serving; a full disk refuses writes with STORAGE_FULL and the node serves again when
// space returns, without a restart.
import Core
import EdgeNode
import Foundation
import GRDB
import GRPCCore
import GRPCNIOTransportHTTP2
import SwiftProtobuf
import TestSupport
import Testing
import Wire

@Suite("Hostile input at the edge")
struct HostileInputTests {
    static func enrolled(_ edge: EdgeHarness, phone: String = "+8613800138000") async throws -> String {
        try await edge.points.enroll(Requests.enroll("E-1", phone: phone), metadata: edge.auth("mall-fashion")).member
            .memberID
    }

    @Test(
        "truncated and bit-flipped earn bodies: never UNKNOWN or INTERNAL, refused ones write nothing, the node keeps serving"
    )
    func corruptedBodies() async throws {
        try await EdgeFixture.withEdge { edge in
            let member = try await Self.enrolled(edge)
            var request = Requests.earn("CORRUPT-1", member: member, amount: 12_345, lines: [("apparel", 12_345)])
            request.merchantID = "mall-fashion"
            let body: [UInt8] = try request.serializedBytes()
            let port = try await edge.node.listeningPort
            var refused = 0
            var accepted = 0
            try await withGRPCClient(
                transport: .http2NIOPosix(
                    target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
            ) { client in
                for (name, corrupted) in corruptions(of: body) {
                    let before = try await edge.rowCounts()
                    do {
                        _ = try await client.raw(
                            corrupted, service: "coalition.edge.v1.Points", method: "Earn",
                            metadata: edge.auth("mall-fashion"))
                        // Some flips still make a valid earn (another amount or request id): that is a request like any other.
                        accepted += 1
                    } catch let error as RPCError {
                        refused += 1
                        #expect(
                            error.code != .unknown && error.code != .internalError,
                            "\(name): \(error.code) \(error.message)")
                        #expect(try await edge.rowCounts() == before, "\(name) was refused but wrote")
                    }
                }
            }
            #expect(refused > accepted)
            // Still serving, and an honest request is earned once.
            request.requestID = "HONEST-1"
            let earned = try await edge.points.earn(request, metadata: edge.auth("mall-fashion"))
            #expect(earned.points > 0)
            #expect(
                try await edge.points.earn(request, metadata: edge.auth("mall-fashion")).transactionID
                    == earned.transactionID)
        }
    }

    @Test(
        "a full disk refuses earns and redemptions with STORAGE_FULL, writes nothing, and serves again when space returns"
    )
    func diskFull() async throws {
        var limits = EdgeLimits()
        limits.databaseBytesMax = 512 * 1024
        try await EdgeFixture.withEdge(limits: limits) { edge in
            let member = try await Self.enrolled(edge)
            _ = try await edge.points.earn(
                Requests.earn("FILL-0", member: member, amount: 5_000_000), metadata: edge.auth("mall-fashion"))
            // Fill the file with earns (long request ids and many lines make each one big).
            var earnRefused = false
            for index in 1...5_000 where !earnRefused {
                let lines = (0..<20).map { _ in ("apparel", Int64(100)) }
                do {
                    _ = try await edge.points.earn(
                        Requests.earn(
                            "FILL-\(index)-" + String(repeating: "x", count: 40), member: member, amount: 2_000,
                            lines: lines),
                        metadata: edge.auth("mall-fashion"))
                } catch {
                    let status = status(of: error)
                    #expect(status.code == .resourceExhausted && status.reason == "STORAGE_FULL", "\(status.message)")
                    earnRefused = true
                }
            }
            #expect(earnRefused, "the database never filled up")
            // Smaller writes may still fit in half-empty pages: redeem until one is refused too.
            var refused: (request: Coalition_Edge_V1_RedeemRequest, before: [String: Int], balance: Int64)?
            for index in 1...2_000 where refused == nil {
                var redeem = Requests.redeem("FULL-R-\(index)", member: member, bill: 100_000, points: 500)
                redeem.merchantID = "mall-fashion"
                let before = try await edge.rowCounts()
                let balance = try await edge.points.getBalance(
                    Requests.balance(member), metadata: edge.auth("mall-fashion")
                ).member.balancePoints
                do {
                    _ = try await edge.points.redeem(redeem, metadata: edge.auth("mall-fashion"))
                } catch {
                    let status = status(of: error)
                    #expect(status.code == .resourceExhausted && status.reason == "STORAGE_FULL", "\(status.message)")
                    #expect(status.message.contains("storage is full"))
                    refused = (redeem, before, balance)
                }
            }
            let full = try #require(refused, "no redemption was refused on a full disk")
            #expect(try await edge.rowCounts() == full.before)
            // Reads go on: the till can still show the balance.
            #expect(
                try await edge.points.getBalance(Requests.balance(member), metadata: edge.auth("mall-fashion")).member
                    .balancePoints == full.balance)
            // Space returns (here: the limit is raised on the running writer): the same request now succeeds.
            try await edge.node.ledger.database.pool.barrierWriteWithoutTransaction { db in
                try db.execute(sql: "PRAGMA max_page_count = 1000000")
            }
            let redeemed = try await edge.points.redeem(full.request, metadata: edge.auth("mall-fashion"))
            #expect(redeemed.points == 500)
            #expect(redeemed.balanceAfterPoints == full.balance - 500)
        }
    }
}
