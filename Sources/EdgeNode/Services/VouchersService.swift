import Core
import GRPCCore
import Wire

/// `coalition.edge.v1.Vouchers`: a till checks a voucher of the points mall, offline: the
/// signature by a voucher key the edge pulled, then `VoucherRules` on the program in force, the
/// terminal's merchant and what the edge knows of the voucher.
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
            let code: VoucherCode
            switch VoucherCode.parse(request.message.code) {
            case .success(let parsed): code = parsed
            case .failure(let error):
                let refusal = VoucherRefusal.malformed(error)
                throw ServiceError(.invalidArgument, "code: \(refusal.message)", reason: refusal.reason)
            }
            let known = try await ledger.voucherKnowledge(code.claim.voucherID)
            guard VoucherSeal.verify(code, keys: known.keys) else {
                throw ServiceError(
                    .failedPrecondition, VoucherRefusal.forged.message, reason: VoucherRefusal.forged.reason)
            }
            let program = ledger.program.program
            switch VoucherRules.check(
                code.claim, program: program, merchant: merchant, now: ledger.clockNow, status: known.status)
            {
            case .failure(let refusal):
                throw ServiceError(.failedPrecondition, refusal.message, reason: refusal.reason)
            case .success(let item):
                var response = Coalition_Edge_V1_CheckVoucherResponse()
                response.voucherID = code.claim.voucherID.description
                response.itemID = item.id.rawValue
                response.itemName = item.name
                response.kind = item.kind.rawValue
                response.parkingMinutes = Int32(item.voucher?.parkingMinutes ?? 0)
                response.validUntilAtMs = code.claim.validUntil.milliseconds
                response.settlementPriceMinor = item.settlementPrice.minorUnits
                return ServerResponse(message: response)
            }
        }
    }
}
