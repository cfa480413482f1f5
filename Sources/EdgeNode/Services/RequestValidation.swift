import Core
import GRPCCore
import Wire

/// Checks shared by the edge services: each names the request field at fault.
enum RequestValidation {
    static func requestID(_ text: String) throws(ServiceError) -> RequestID {
        guard let id = RequestID(text) else { throw .invalid("request_id", RequestID.rule) }
        return id
    }

    static func member(_ text: String, field: String = "member_id") throws(ServiceError) -> MemberID {
        guard !text.isEmpty else { throw .invalid(field, "is required") }
        guard let id = MemberID(text) else {
            throw .invalid(field, "must be a 26-character member id (Crockford base32)")
        }
        return id
    }

    static func transaction(_ text: String, field: String) throws(ServiceError) -> TransactionID {
        guard !text.isEmpty else { throw .invalid(field, "is required") }
        guard let id = TransactionID(text) else {
            throw .invalid(field, "must be a 26-character transaction id (Crockford base32)")
        }
        return id
    }

    /// The optional merchant of a request must be the terminal's own.
    static func merchant(_ text: String, terminal: MerchantID) throws(ServiceError) {
        guard !text.isEmpty, text != terminal.rawValue else { return }
        throw ServiceError(
            .permissionDenied, "merchant_id: this terminal acts for '\(terminal)', not '\(text)'")
    }

    /// Printable ASCII text of at most `maximum` characters (empty allowed).
    static func text(_ text: String, field: String, maximum: Int) throws(ServiceError) -> String {
        guard text.utf8.count <= maximum else { throw .invalid(field, "at most \(maximum) characters") }
        return text
    }

    static func printable(_ text: String, field: String, maximum: Int) throws(ServiceError) -> String {
        guard text.utf8.count <= maximum, text.utf8.allSatisfy({ $0 >= 0x20 && $0 <= 0x7E }) else {
            throw .invalid(field, "at most \(maximum) printable ASCII characters")
        }
        return text
    }
}
