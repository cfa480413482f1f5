import Core
import Foundation
import GRPCCore
import Wire

/// The parts of the ledger not yet built on PostgreSQL (docs/scale.md, "Status"): each answers
/// UNIMPLEMENTED with a sentence saying so, never a wrong figure.
extension PostgresLedgerStore {
    private func notYet(_ what: String) -> ServiceError {
        ServiceError(
            .unimplemented,
            "\(what) is not yet available on a PostgreSQL ledger (docs/scale.md, \"Status\"); use a SQLite ledger for it"
        )
    }

    package func closeSettlement(period: CivilDate, by operatorName: String) async throws -> ClosedSettlement {
        throw notYet("closing a settlement period")
    }

    package func storedSettlement(_ period: CivilDate) async throws -> ClosedSettlement? {
        throw notYet("reading a settlement period")
    }
}
