import Core
import GRPCCore
import Wire

/// `coalition.edge.v1.Vouchers`: a till checks and honours vouchers of the points mall, offline:
/// the signature by a voucher key the edge pulled, then `VoucherRules` on the program in force, the
/// terminal's merchant and what the edge knows of the voucher; a use is recorded in the outbox.
package struct VouchersService: Coalition_Edge_V1_Vouchers.ServiceProtocol {
    private let ledger: EdgeLedger
    private let terminals: TerminalRegistry
    private let requestBytesMax: Int

    package init(ledger: EdgeLedger, terminals: TerminalRegistry, requestBytesMax: Int) {
        self.ledger = ledger
        self.terminals = terminals
        self.requestBytesMax = requestBytesMax
    }
}

extension VouchersService {
    package func check(
        request: ServerRequest<Coalition_Edge_V1_CheckVoucherRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Edge_V1_CheckVoucherResponse> {
        try await ServiceError.mapping {
            _ = try ServiceError.sizedBytes(request.message, maximum: requestBytesMax)
            let merchant = try await terminals.authenticate(request.metadata, peer: context.remotePeer)
            return ServerResponse(message: try await checked(request.message.code, merchant: merchant).answer)
        }
    }

    package func redeem(
        request: ServerRequest<Coalition_Edge_V1_RedeemVoucherRequest>, context: ServerContext
    ) async throws -> ServerResponse<Coalition_Edge_V1_RedeemVoucherResponse> {
        try await ServiceError.mapping {
            let bytes = try ServiceError.sizedBytes(request.message, maximum: requestBytesMax)
            let merchant = try await terminals.authenticate(request.metadata, peer: context.remotePeer)
            let requestID = try RequestValidation.requestID(request.message.requestID)
            let key = RequestKey(merchant: merchant, operation: .voucherRedeem, requestID: requestID, content: bytes)
            // A retry gets its first answer, even once the voucher is known used (by that answer).
            if let answered = try await ledger.storedVoucherAnswer(key) { return ServerResponse(message: answered) }
            let (claim, item, answer) = try await checked(request.message.code, merchant: merchant)
            return ServerResponse(
                message: try await ledger.redeemVoucher(
                    EdgeLedger.VoucherRedemption(key: key, claim: claim, item: item, voucher: answer)))
        }
    }

    /// The voucher `code` checked for a till of `merchant`: parsed, its signature verified by a
    /// pulled key, then `VoucherRules` on the program in force and what the edge knows of it.
    private func checked(_ text: String, merchant: MerchantID) async throws -> (
        claim: VoucherClaim, item: CatalogItem, answer: Coalition_Edge_V1_CheckVoucherResponse
    ) {
        let code: VoucherCode
        switch VoucherCode.parse(text) {
        case .success(let parsed): code = parsed
        case .failure(let error):
            let refusal = VoucherRefusal.malformed(error)
            throw ServiceError(.invalidArgument, "code: \(refusal.message)", reason: refusal.reason)
        }
        let known = try await ledger.voucherKnowledge(code.claim.voucherID)
        guard VoucherSeal.verify(code, keys: known.keys) else {
            throw ServiceError(.failedPrecondition, VoucherRefusal.forged.message, reason: VoucherRefusal.forged.reason)
        }
        switch VoucherRules.check(
            code.claim, program: ledger.program.program, merchant: merchant, now: ledger.clockNow, status: known.status)
        {
        case .failure(let refusal):
            throw ServiceError(.failedPrecondition, refusal.message, reason: refusal.reason)
        case .success(let item):
            var answer = Coalition_Edge_V1_CheckVoucherResponse()
            answer.voucherID = code.claim.voucherID.description
            answer.itemID = item.id.rawValue
            answer.itemName = item.name
            answer.kind = item.kind.rawValue
            answer.parkingMinutes = Int32(item.voucher?.parkingMinutes ?? 0)
            answer.validUntilAtMs = code.claim.validUntil.milliseconds
            answer.settlementPriceMinor = item.settlementPrice.minorUnits
            return (code.claim, item, answer)
        }
    }
}
