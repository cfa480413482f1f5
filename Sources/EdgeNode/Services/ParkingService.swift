import Core
import GRPCCore
import Wire

/// `coalition.edge.v1.Parking`: exit quotes and payments for the barriers of a car park. Never
/// waits for the gateway longer than the authorisation deadline, so a barrier always gets a
/// decision.
package struct ParkingService: Coalition_Edge_V1_Parking.ServiceProtocol {
    private let ledger: EdgeLedger
    private let terminals: TerminalRegistry
    private let requestBytesMax: Int

    package init(ledger: EdgeLedger, terminals: TerminalRegistry, requestBytesMax: Int) {
        self.ledger = ledger
        self.terminals = terminals
        self.requestBytesMax = requestBytesMax
    }
}

extension ParkingService {
    package func quote(
        request: ServerRequest<Coalition_Edge_V1_ParkingQuoteRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Edge_V1_ParkingQuoteResponse> {
        try await ServiceError.mapping {
            _ = try ServiceError.sizedBytes(request.message, maximum: requestBytesMax)
            _ = try await terminals.authenticate(request.metadata, peer: context.remotePeer)
            let message = request.message
            let stay = try Self.stay(
                ticket: message.ticketID, member: message.memberID, entry: message.entryAtMs, exit: message.exitAtMs)
            return ServerResponse(message: try await ledger.parkingQuote(stay))
        }
    }

    package func pay(
        request: ServerRequest<Coalition_Edge_V1_ParkingPayRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Edge_V1_ParkingPayResponse> {
        try await ServiceError.mapping {
            let bytes = try ServiceError.sizedBytes(request.message, maximum: requestBytesMax)
            let merchant = try await terminals.authenticate(request.metadata, peer: context.remotePeer)
            let message = request.message
            let requestID = try RequestValidation.requestID(message.requestID)
            let stay = try Self.stay(
                ticket: message.ticketID, member: message.memberID, entry: message.entryAtMs, exit: message.exitAtMs)
            guard message.points >= 0 else {
                throw ServiceError.invalid("points", "must not be negative (found \(message.points))")
            }
            let key = RequestKey(merchant: merchant, operation: .parkingPay, requestID: requestID, content: bytes)
            return ServerResponse(message: try await ledger.parkingPay(stay, points: Points(message.points), key: key))
        }
    }

    package func enter(
        request: ServerRequest<Coalition_Edge_V1_ParkingEnterRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Edge_V1_ParkingEnterResponse> {
        try await ServiceError.mapping {
            _ = try ServiceError.sizedBytes(request.message, maximum: requestBytesMax)
            _ = try await terminals.authenticate(request.metadata, peer: context.remotePeer)
            let message = request.message
            let requestID = try RequestValidation.requestID(message.requestID)
            guard !message.ticketID.isEmpty else { throw ServiceError.invalid("ticket_id", "is required") }
            _ = try RequestValidation.printable(message.ticketID, field: "ticket_id", maximum: 32)
            let member = try RequestValidation.member(message.memberID)
            let granted = try await ledger.requestAllowance(member: member, trigger: .entry, requestID: requestID)
            var response = Coalition_Edge_V1_ParkingEnterResponse()
            response.allowanceID = granted.allowanceID
            response.allowancePoints = granted.points
            response.allowanceUntilMs = granted.stopAtMs
            response.alreadyGranted = granted.alreadyGranted
            return ServerResponse(message: response)
        }
    }

    private static func stay(ticket: String, member: String, entry: Int64, exit: Int64) throws(ServiceError)
        -> EdgeLedger.ParkingStay
    {
        guard !ticket.isEmpty else { throw .invalid("ticket_id", "is required") }
        let ticket = try RequestValidation.printable(ticket, field: "ticket_id", maximum: 32)
        let memberID = member.isEmpty ? nil : try RequestValidation.member(member)
        guard entry > 0, Timestamp.wireRange.contains(entry) else {
            throw .invalid("entry_at_ms", "must be a Unix time in milliseconds up to 9999-12-31 (found \(entry))")
        }
        guard exit > 0, Timestamp.wireRange.contains(exit) else {
            throw .invalid("exit_at_ms", "must be a Unix time in milliseconds up to 9999-12-31 (found \(exit))")
        }
        guard exit >= entry else { throw .invalid("exit_at_ms", "the exit is before the entry") }
        return EdgeLedger.ParkingStay(
            ticket: ticket, member: memberID, entry: Timestamp(milliseconds: entry), exit: Timestamp(milliseconds: exit)
        )
    }
}
