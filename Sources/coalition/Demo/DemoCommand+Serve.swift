import Core
import EdgeNode
import Foundation
import Gateway
import Hummingbird
import LocalNetwork
import NodeSupport
import UnixSignals
import Wire

/// `coalition demo --serve`: after the scripted days the network stays up with light random
/// traffic, its console and `/metrics` listening on loopback, until Ctrl-C.
extension Demo {
    /// Seconds between two rounds of traffic.
    static var serveRoundSeconds: Int { 2 }

    func keepServing(gateway: GatewayNode, port: Int, park: Edge, members: [String]) async throws {
        try await withEdge("mall-01", merchants: ["mall-fashion", "mall-cafe"], gatewayPort: port) { mall in
            try await withEdge("hotel-01", merchants: ["hotel-rooms", "hotel-restaurant"], gatewayPort: port) { hotel in
                guard let link = gateway.consoleLink else {
                    throw CommandFailure("the demo's gateway serves no console")
                }
                let login = try await link.mint(for: "alice", now: clock.now())
                var lines = [
                    "",
                    "Serving the demo network until Ctrl-C (light random traffic every \(Self.serveRoundSeconds) s).",
                ]
                lines.append("Console: \(login.url)")
                lines.append(
                    "  (a one-time sign-in link for operator alice; a new one: coalition admin console login --config \(path("admin.yaml")))"
                )
                lines.append("Metrics:")
                let endpoints: [(String, HTTPEndpoint<BasicRequestContext>?)] = [
                    ("gateway", gateway.metricsEndpoint), ("mall-01", mall.node.metricsEndpoint),
                    ("hotel-01", hotel.node.metricsEndpoint), ("park-01", park.node.metricsEndpoint),
                ]
                for (name, endpoint) in endpoints {
                    guard let endpoint else { continue }
                    lines.append("  \(name): http://127.0.0.1:\(try await endpoint.port.value)/metrics")
                }
                say(lines.joined(separator: "\n"))
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await _ in await UnixSignalsSequence(trapping: .sigint, .sigterm) { return }
                    }
                    group.addTask { try await traffic(mall: mall, hotel: hotel, members: members) }
                    _ = try await group.next()
                    group.cancelAll()
                }
                say("\nStopping the demo network.")
            }
        }
    }

    /// Earns at the mall and the hotel, now and then a redemption, the clock moving with real time.
    private func traffic(mall: Edge, hotel: Edge, members: [String]) async throws {
        var generator = SystemRandomNumberGenerator()
        var round = 0
        while !Task.isCancelled {
            round += 1
            try await Task.sleep(for: .seconds(Self.serveRoundSeconds))
            clock.set(clock.now().adding(milliseconds: Int64(Self.serveRoundSeconds) * 1_000))
            let member = members.randomElement(using: &generator) ?? members[0]
            let (edge, merchant) =
                Bool.random(using: &generator) ? (mall, "mall-cafe") : (hotel, "hotel-restaurant")
            var earn = Coalition_Edge_V1_EarnRequest()
            earn.requestID = "SERVE-E-\(round)"
            earn.memberID = member
            earn.amountMinor = Int64.random(in: 2_000...60_000, using: &generator)
            _ = try? await edge.points.earn(earn, metadata: edge.auth(merchant))
            if round % 5 == 0 {
                var redeem = Coalition_Edge_V1_RedeemRequest()
                redeem.requestID = "SERVE-R-\(round)"
                redeem.memberID = member
                redeem.billAmountMinor = 20_000
                redeem.points = 500
                _ = try? await edge.points.redeem(redeem, metadata: edge.auth(merchant))
            }
        }
    }
}
