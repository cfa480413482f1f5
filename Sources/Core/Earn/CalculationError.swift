/// A request a calculator cannot compute: bad input or an unknown reference.
///
/// Core errors never mention gRPC; the services map `code` to a status (`invalidInput` to
/// INVALID_ARGUMENT naming `field`, `unknownReference` to NOT_FOUND).
package struct CalculationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of problem; evolvable without breaking callers.
    package struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Wrapped: Hashable, Sendable {
            case invalidInput
            case unknownReference
        }
        private let wrapped: Wrapped

        /// A field is missing, out of range or inconsistent.
        package static let invalidInput = Code(wrapped: .invalidInput)
        /// A merchant, tier or site the program does not know.
        package static let unknownReference = Code(wrapped: .unknownReference)

        package var description: String {
            switch wrapped {
            case .invalidInput: return "invalid input"
            case .unknownReference: return "unknown reference"
            }
        }
    }

    package var code: Code
    /// The input field at fault, in the request's terms (`amount`, `lines[2].amount`).
    package var field: String
    /// What is wrong, in a sentence.
    package var message: String

    package init(_ code: Code, field: String, _ message: String) {
        self.code = code
        self.field = field
        self.message = message
    }

    package var description: String { "\(field): \(message)" }
}

/// Why a redemption (or a parking payment with points) is refused, in terms a cashier can act on.
package enum Refusal: String, Error, Hashable, Sendable, CaseIterable {
    case insufficientPoints = "INSUFFICIENT_POINTS"
    case belowMinimum = "BELOW_MINIMUM"
    case overBillShare = "OVER_BILL_SHARE"
    case excludedCategory = "EXCLUDED_CATEGORY"
    case offlineTransactionCap = "OFFLINE_TRANSACTION_CAP"
    case offlineDailyCap = "OFFLINE_DAILY_CAP"
    case offlineSiteExposure = "OFFLINE_SITE_EXPOSURE"
    case offlineTooLong = "OFFLINE_TOO_LONG"
    case notReversible = "NOT_REVERSIBLE"
    case storageFull = "STORAGE_FULL"
}

/// One line of a bill.
package struct SaleLine: Hashable, Sendable {
    /// The vendor's article code (informational).
    package var sku: String
    /// The line's category; nil means the merchant's category.
    package var category: Category?
    /// The line amount, > 0.
    package var amount: Money

    package init(sku: String = "", category: Category?, amount: Money) {
        self.sku = sku
        self.category = category
        self.amount = amount
    }
}

/// Checks shared by every calculator that takes a bill.
enum BillValidation {
    /// Validates the amount and the lines of a bill against the program's limits.
    static func validate(
        amount: Money, lines: [SaleLine], limits: ProgramLimits, amountField: String
    ) throws(CalculationError) {
        guard amount.minorUnits > 0 else {
            throw CalculationError(.invalidInput, field: amountField, "must be greater than 0 (found \(amount))")
        }
        guard amount <= limits.transactionAmountMax else {
            throw CalculationError(
                .invalidInput, field: amountField,
                "must be at most \(limits.transactionAmountMax) minor units (found \(amount))")
        }
        guard lines.count <= limits.linesMax else {
            throw CalculationError(
                .invalidInput, field: "lines", "at most \(limits.linesMax) lines (found \(lines.count))")
        }
        guard !lines.isEmpty else { return }
        var total = Money.zero
        for (index, line) in lines.enumerated() {
            guard line.amount.minorUnits > 0, line.amount <= limits.transactionAmountMax else {
                throw CalculationError(
                    .invalidInput, field: "lines[\(index)].amount",
                    "must be between 1 and \(limits.transactionAmountMax) (found \(line.amount))")
            }
            total += line.amount
        }
        guard total == amount else {
            throw CalculationError(
                .invalidInput, field: "lines", "line amounts sum to \(total), not the bill's \(amount)")
        }
    }

    /// The lines of a bill, with a single line of the merchant's category when none were given.
    static func effectiveLines(amount: Money, lines: [SaleLine], merchant: Merchant) -> [(
        category: Category, amount: Money
    )] {
        if lines.isEmpty { return [(merchant.category, amount)] }
        return lines.map { ($0.category ?? merchant.category, $0.amount) }
    }
}
