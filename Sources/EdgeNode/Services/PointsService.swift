import Core
import GRPCCore
import SwiftProtobuf
import Wire

/// `coalition.edge.v1.Points`: enrolment, earn, redeem, reverse, balance and history for the tills
/// of one site. Every call is authenticated by its terminal token and acts for that terminal's
/// merchant.
package struct PointsService: Coalition_Edge_V1_Points.ServiceProtocol {
    private let ledger: EdgeLedger
    private let terminals: TerminalRegistry
    private let historyPageSizeMax: Int
    private let requestBytesMax: Int

    package init(ledger: EdgeLedger, terminals: TerminalRegistry, historyPageSizeMax: Int, requestBytesMax: Int) {
        self.ledger = ledger
        self.terminals = terminals
        self.historyPageSizeMax = historyPageSizeMax
        self.requestBytesMax = requestBytesMax
    }
}

extension PointsService {
    package func enroll(
        request: ServerRequest<Coalition_Edge_V1_EnrollRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Edge_V1_EnrollResponse> {
        try await handle(request, context) { merchant, message, bytes in
            let requestID = try RequestValidation.requestID(message.requestID)
            guard !message.phone.isEmpty else { throw ServiceError.invalid("phone", "is required") }
            guard let phone = PhoneNumber(message.phone) else { throw ServiceError.invalid("phone", PhoneNumber.rule) }
            let card = try RequestValidation.printable(message.cardNumber, field: "card_number", maximum: 32)
            guard (0...12).contains(message.birthMonth) else {
                throw ServiceError.invalid(
                    "birth_month", "must be 1 to 12, or 0 when unknown (found \(message.birthMonth))")
            }
            let referrer =
                message.referrerMemberID.isEmpty
                ? nil : try RequestValidation.member(message.referrerMemberID, field: "referrer_member_id")
            return try await ledger.enroll(
                EdgeLedger.Enroll(
                    key: RequestKey(merchant: merchant, operation: .enroll, requestID: requestID, content: bytes),
                    phone: phone, cardNumber: card.isEmpty ? nil : card,
                    birthMonth: message.birthMonth == 0 ? nil : Int(message.birthMonth), referrer: referrer))
        }
    }

    package func lookupMember(
        request: ServerRequest<Coalition_Edge_V1_LookupMemberRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Edge_V1_LookupMemberResponse> {
        try await handle(request, context) { _, message, _ in
            let key: EdgeLedger.MemberKey
            switch message.key {
            case .phone(let text):
                guard let phone = PhoneNumber(text) else { throw ServiceError.invalid("phone", PhoneNumber.rule) }
                key = .phone(phone)
            case .cardNumber(let card):
                guard !card.isEmpty else { throw ServiceError.invalid("card_number", "is empty") }
                key = .card(try RequestValidation.printable(card, field: "card_number", maximum: 32))
            case .memberID(let text):
                key = .id(try RequestValidation.member(text))
            case nil:
                throw ServiceError.invalid("key", "set one of phone, card_number or member_id")
            }
            var response = Coalition_Edge_V1_LookupMemberResponse()
            response.member = try await ledger.lookup(key)
            return response
        }
    }

    package func earn(
        request: ServerRequest<Coalition_Edge_V1_EarnRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Edge_V1_EarnResponse> {
        try await handle(request, context) { merchant, message, bytes in
            let requestID = try RequestValidation.requestID(message.requestID)
            try RequestValidation.merchant(message.merchantID, terminal: merchant)
            let member = try RequestValidation.member(message.memberID)
            let lines = try message.lines.core(maximum: ledger.program.program.limits.linesMax)
            return try await ledger.earn(
                EdgeLedger.Earn(
                    key: RequestKey(merchant: merchant, operation: .earn, requestID: requestID, content: bytes),
                    member: member, amount: Money(minorUnits: message.amountMinor), lines: lines,
                    paidWithPoints: Money(minorUnits: message.paidWithPointsMinor)))
        }
    }

    package func previewRedeem(
        request: ServerRequest<Coalition_Edge_V1_PreviewRedeemRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Edge_V1_PreviewRedeemResponse> {
        try await handle(request, context) { merchant, message, bytes in
            try RequestValidation.merchant(message.merchantID, terminal: merchant)
            let member = try RequestValidation.member(message.memberID)
            let lines = try message.lines.core(maximum: ledger.program.program.limits.linesMax)
            return try await ledger.previewRedeem(
                member: member, merchant: merchant, bill: Money(minorUnits: message.billAmountMinor), lines: lines,
                points: Points(message.points))
        }
    }

    package func redeem(
        request: ServerRequest<Coalition_Edge_V1_RedeemRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Edge_V1_RedeemResponse> {
        try await handle(request, context) { merchant, message, bytes in
            let requestID = try RequestValidation.requestID(message.requestID)
            try RequestValidation.merchant(message.merchantID, terminal: merchant)
            let member = try RequestValidation.member(message.memberID)
            guard message.points > 0 else {
                throw ServiceError.invalid("points", "must be greater than 0 (found \(message.points))")
            }
            let lines = try message.lines.core(maximum: ledger.program.program.limits.linesMax)
            return try await ledger.redeem(
                EdgeLedger.Redeem(
                    key: RequestKey(merchant: merchant, operation: .redeem, requestID: requestID, content: bytes),
                    member: member, bill: Money(minorUnits: message.billAmountMinor), lines: lines,
                    points: Points(message.points)))
        }
    }

    package func reverse(
        request: ServerRequest<Coalition_Edge_V1_ReverseRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Edge_V1_ReverseResponse> {
        try await handle(request, context) { merchant, message, bytes in
            let requestID = try RequestValidation.requestID(message.requestID)
            let original = try RequestValidation.transaction(
                message.originalTransactionID, field: "original_transaction_id")
            let reason = try RequestValidation.text(message.reason, field: "reason", maximum: 200)
            let limit = ledger.program.program.limits.transactionAmountMax
            guard message.amountMinor >= 0, message.amountMinor <= limit.minorUnits else {
                throw ServiceError.invalid(
                    "amount_minor", "must be between 0 and \(limit) (found \(message.amountMinor))")
            }
            return try await ledger.reverse(
                EdgeLedger.Reverse(
                    key: RequestKey(merchant: merchant, operation: .reverse, requestID: requestID, content: bytes),
                    original: original, amount: Money(minorUnits: message.amountMinor), reason: reason))
        }
    }

    package func getBalance(
        request: ServerRequest<Coalition_Edge_V1_GetBalanceRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Edge_V1_GetBalanceResponse> {
        try await handle(request, context) { _, message, _ in
            try await ledger.balance(try RequestValidation.member(message.memberID))
        }
    }

    package func history(
        request: ServerRequest<Coalition_Edge_V1_HistoryRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Edge_V1_HistoryResponse> {
        try await handle(request, context) { _, message, _ in
            let member = try RequestValidation.member(message.memberID)
            let size = message.pageSize == 0 ? min(20, historyPageSizeMax) : Int(message.pageSize)
            guard (1...historyPageSizeMax).contains(size) else {
                throw ServiceError.invalid("page_size", "must be 0 (default 20) or 1 to \(historyPageSizeMax)")
            }
            var before: Int64?
            if !message.pageToken.isEmpty {
                guard let token = Int64(message.pageToken), token > 0 else {
                    throw ServiceError.invalid("page_token", "is not a token from a previous page")
                }
                before = token
            }
            return try await ledger.history(member, pageSize: size, before: before)
        }
    }

    package func checkIn(
        request: ServerRequest<Coalition_Edge_V1_CheckInRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Edge_V1_CheckInResponse> {
        try await handle(request, context) { _, message, _ in
            let requestID = try RequestValidation.requestID(message.requestID)
            let member = try RequestValidation.member(message.memberID)
            let granted = try await ledger.requestAllowance(member: member, trigger: .checkIn, requestID: requestID)
            var response = Coalition_Edge_V1_CheckInResponse()
            response.allowanceID = granted.allowanceID
            response.allowancePoints = granted.points
            response.allowanceUntilMs = granted.stopAtMs
            response.alreadyGranted = granted.alreadyGranted
            return response
        }
    }

    /// Authenticates the terminal, runs the body, and maps every error to an explicit status.
    /// The body gets the request's encoded bytes too (encoded once, for the size check and the
    /// idempotency hash).
    private func handle<Input: SwiftProtobuf.Message, Output: Sendable>(
        _ request: ServerRequest<Input>, _ context: ServerContext,
        _ body: (MerchantID, Input, [UInt8]) async throws -> Output
    ) async throws -> ServerResponse<Output> {
        try await ServiceError.mapping {
            let bytes = try ServiceError.sizedBytes(request.message, maximum: requestBytesMax)
            let merchant = try await terminals.authenticate(request.metadata, peer: context.remotePeer)
            return ServerResponse(message: try await body(merchant, request.message, bytes))
        }
    }
}
