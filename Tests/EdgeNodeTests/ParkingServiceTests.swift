// Goal: a barrier at the car park gets a price and a decision with the gateway unreachable: grace,
// tier free minutes (once a day), the tariff and points, all as Core computes them.
import Core
import EdgeNode
import Foundation
import GRPCCore
import TestSupport
import Testing
import Wire

@Suite("Parking service")
struct ParkingServiceTests {
    static func stay(_ ticket: String, member: String, entry: Timestamp, minutes: Int64)
        -> Coalition_Edge_V1_ParkingQuoteRequest
    {
        var request = Coalition_Edge_V1_ParkingQuoteRequest()
        request.ticketID = ticket
        request.memberID = member
        request.entryAtMs = entry.milliseconds
        request.exitAtMs = entry.milliseconds + minutes * Timestamp.minute
        return request
    }

    static func pay(_ id: String, _ quote: Coalition_Edge_V1_ParkingQuoteRequest, points: Int64)
        -> Coalition_Edge_V1_ParkingPayRequest
    {
        var request = Coalition_Edge_V1_ParkingPayRequest()
        request.requestID = id
        request.ticketID = quote.ticketID
        request.memberID = quote.memberID
        request.entryAtMs = quote.entryAtMs
        request.exitAtMs = quote.exitAtMs
        request.points = points
        return request
    }

    /// The example program with the car park's site as this edge.
    static func withCarPark(_ body: (EdgeHarness) async throws -> Void) async throws {
        try await EdgeFixture.withEdge(site: "park-01", merchants: ["park-operator"], body)
    }

    @Test("a member pays the whole fee with points and the barrier opens")
    func payWithPoints() async throws {
        try await Self.withCarPark { edge in
            let auth = edge.auth("park-operator")
            let member = try await edge.points.enroll(Requests.enroll("E-1", phone: "+8613800138000"), metadata: auth)
                .member.memberID
            _ = try await edge.points.earn(Requests.earn("R-1", member: member, amount: 500_000), metadata: auth)
            let entry = edge.clock.now().adding(milliseconds: -3 * Timestamp.hour)
            let request = Self.stay("T-1", member: member, entry: entry, minutes: 180)
            let quote = try await edge.parking.quote(request, metadata: auth)
            let expected = try ParkingCalculator.quote(
                program: edge.program,
                input: ParkingInput(
                    site: SiteID("park-01")!, entry: entry, exit: entry.adding(milliseconds: 180 * Timestamp.minute),
                    tier: TierID("member")!))
            #expect(quote.feeMinor == expected.fee.minorUnits)
            #expect(quote.feeMinor == 3_000)
            #expect(quote.pointsForFullFee == 3_000)
            #expect(quote.balancePoints == 5_200)
            let paid = try await edge.parking.pay(
                Self.pay("X-1", request, points: quote.pointsForFullFee), metadata: auth)
            #expect(paid.openBarrier)
            #expect(paid.amountDueMinor == 0)
            #expect(paid.authorization == .floorLimit)
            #expect(paid.balanceAfterPoints == 2_200)
            // The retry returns the same decision without taking the points twice.
            #expect(
                try await edge.parking.pay(Self.pay("X-1", request, points: quote.pointsForFullFee), metadata: auth)
                    == paid)
            #expect(
                try await edge.points.getBalance(Requests.balance(member), metadata: auth).member.balancePoints == 2_200
            )
        }
    }

    @Test("part of the fee in points leaves money due and the barrier closed")
    func partialPayment() async throws {
        try await Self.withCarPark { edge in
            let auth = edge.auth("park-operator")
            let member = try await edge.points.enroll(Requests.enroll("E-1", phone: "+8613800138000"), metadata: auth)
                .member.memberID
            let request = Self.stay(
                "T-2", member: member, entry: edge.clock.now().adding(milliseconds: -Timestamp.hour), minutes: 60)
            let paid = try await edge.parking.pay(Self.pay("X-2", request, points: 200), metadata: auth)
            #expect(paid.feeMinor == 1_000)
            #expect(paid.pointsValueMinor == 200)
            #expect(paid.amountDueMinor == 800)
            #expect(!paid.openBarrier)
        }
    }

    @Test("a stay within grace is free for anyone, member or not")
    func grace() async throws {
        try await Self.withCarPark { edge in
            let auth = edge.auth("park-operator")
            let request = Self.stay(
                "T-3", member: "", entry: edge.clock.now().adding(milliseconds: -15 * Timestamp.minute), minutes: 15)
            let quote = try await edge.parking.quote(request, metadata: auth)
            #expect(quote.withinGrace)
            #expect(quote.feeMinor == 0)
            let paid = try await edge.parking.pay(Self.pay("X-3", request, points: 0), metadata: auth)
            #expect(paid.openBarrier)
            #expect(paid.transactionID.isEmpty)
            await expectStatus(.invalidArgument) {
                _ = try await edge.parking.pay(
                    Self.pay("X-4", Self.stay("T-4", member: "", entry: edge.clock.now(), minutes: 90), points: 100),
                    metadata: auth)
            }
        }
    }

    @Test("bad stays are refused with the field named")
    func badStays() async throws {
        try await Self.withCarPark { edge in
            let auth = edge.auth("park-operator")
            var request = Self.stay("T-5", member: "", entry: edge.clock.now(), minutes: 10)
            request.exitAtMs = request.entryAtMs - 1
            #expect(
                await expectStatus(.invalidArgument) { _ = try await edge.parking.quote(request, metadata: auth) }
                    .contains("exit_at_ms"))
            request = Self.stay("", member: "", entry: edge.clock.now(), minutes: 10)
            #expect(
                await expectStatus(.invalidArgument) { _ = try await edge.parking.quote(request, metadata: auth) }
                    .contains("ticket_id"))
            request = Self.stay("T-6", member: "", entry: edge.clock.now(), minutes: 32 * 24 * 60)
            #expect(
                await expectStatus(.invalidArgument) { _ = try await edge.parking.quote(request, metadata: auth) }
                    .contains("entry_at_ms"))
            await expectStatus(.unauthenticated) {
                _ = try await edge.parking.quote(Self.stay("T-7", member: "", entry: edge.clock.now(), minutes: 10))
            }
        }
    }

    @Test("a site without a car park tariff refuses parking calls clearly")
    func noTariff() async throws {
        try await EdgeFixture.withEdge { edge in
            let message = await expectStatus(.failedPrecondition) {
                _ = try await edge.parking.quote(
                    Self.stay("T-8", member: "", entry: edge.clock.now(), minutes: 60),
                    metadata: edge.auth("mall-fashion"))
            }
            #expect(message.contains("car park"))
        }
    }
}
