import Core
import GRPCCore
import SwiftProtobuf

/// An error a Coalition service answers with: always an explicit gRPC status, never `UNKNOWN`.
///
/// Refusals a till acts on also carry the trailing metadata key `coalition-reason` with a stable
/// reason name (`INSUFFICIENT_POINTS`, …; see `coalition.common.v1.RefusalReason`).
package struct ServiceError: Error, Sendable, RPCErrorConvertible, CustomStringConvertible {
    /// The metadata key carrying a refusal's reason name.
    package static let reasonKey = "coalition-reason"

    package var rpcErrorCode: RPCError.Code
    package var rpcErrorMessage: String
    package var rpcErrorMetadata: Metadata
    package var rpcErrorCause: (any Error)?

    package init(_ code: RPCError.Code, _ message: String, reason: String? = nil, cause: (any Error)? = nil) {
        self.rpcErrorCode = code
        self.rpcErrorMessage = message
        var metadata = Metadata()
        if let reason { metadata.addString(reason, forKey: ServiceError.reasonKey) }
        self.rpcErrorMetadata = metadata
        self.rpcErrorCause = cause
    }

    package var description: String { "\(rpcErrorCode): \(rpcErrorMessage)" }

    /// The refusal's reason name, when it has one.
    package var reason: String? { rpcErrorMetadata[stringValues: ServiceError.reasonKey].first(where: { _ in true }) }

    /// INVALID_ARGUMENT naming the field: `amount_minor: must be greater than 0`.
    package static func invalid(_ field: String, _ message: String) -> ServiceError {
        ServiceError(.invalidArgument, "\(field): \(message)")
    }

    /// NOT_FOUND naming what was looked for.
    package static func notFound(_ field: String, _ message: String) -> ServiceError {
        ServiceError(.notFound, "\(field): \(message)")
    }

    /// FAILED_PRECONDITION with a refusal's reason name and a sentence for the cashier.
    package static func refused(_ refusal: Refusal, _ message: String) -> ServiceError {
        ServiceError(.failedPrecondition, message, reason: refusal.rawValue)
    }

    /// A Core calculation error, with Core's field names translated to the request's.
    package init(_ error: CalculationError, fields: [String: String] = [:]) {
        let field = Self.translate(error.field, fields)
        switch error.code {
        case .unknownReference: self.init(.notFound, "\(field): \(error.message)")
        default: self.init(.invalidArgument, "\(field): \(error.message)")
        }
    }

    /// The request's encoded bytes, or RESOURCE_EXHAUSTED when they are over `maximum`. The
    /// transport's own limit (set higher) resets the stream instead of answering, so services check
    /// this one; the bytes are returned so a caller that also hashes the request encodes it once.
    package static func sizedBytes(_ message: some SwiftProtobuf.Message, maximum: Int) throws -> [UInt8] {
        let bytes: [UInt8] = try message.serializedBytes()
        guard bytes.count <= maximum else {
            throw ServiceError(
                .resourceExhausted, "the request is \(bytes.count) bytes; at most \(maximum) are accepted")
        }
        return bytes
    }

    /// Runs a handler body so that any error that is not already a status becomes INTERNAL with
    /// its description, instead of reaching the client as UNKNOWN.
    package static func mapping<Result>(_ body: () async throws -> Result) async throws -> Result {
        do {
            return try await body()
        } catch let error as ServiceError {
            throw error
        } catch let error as RPCError {
            throw error
        } catch let error as CalculationError {
            throw ServiceError(error)
        } catch is CancellationError {
            throw ServiceError(.cancelled, "the call was cancelled")
        } catch {
            throw ServiceError(.internalError, "internal error: \(error)", cause: error)
        }
    }

    /// `lines[2].amount` with `["amount": "amount_minor"]` becomes `lines[2].amount_minor`.
    private static func translate(_ field: String, _ fields: [String: String]) -> String {
        if let exact = fields[field] { return exact }
        guard let dot = field.lastIndex(of: ".") else { return field }
        let last = String(field[field.index(after: dot)...])
        guard let renamed = fields[last] else { return field }
        return String(field[...dot]) + renamed
    }
}
