import GRDB

/// The ledger's chains are whole: each member's lots with points left are exactly the lots on its
/// chain (from `members.lots_head`, each once), and each member's transactions are linked newest to
/// oldest (from `members.last_position` through `transactions.member_previous`). Walked in memory,
/// in time linear in the ledger.
enum LedgerChains {
    /// What is wrong with the chains, one line per fault kind (empty when they are whole).
    static func faults(_ sql: LedgerSQL) async throws -> [String] {
        try faults(
            lots: try await sql.rows(lotsQuery), members: try await sql.rows(membersQuery),
            transactions: try await sql.rows(transactionsQuery))
    }

    /// The same, on a SQLite ledger inside a read.
    static func faults(_ db: Database) throws -> [String] {
        try faults(
            lots: try LedgerSQL.rows(db, lotsQuery), members: try LedgerSQL.rows(db, membersQuery),
            transactions: try LedgerSQL.rows(db, transactionsQuery))
    }

    private static let lotsQuery = "SELECT lot_number, member_id, remaining_points, next_lot FROM lots"
    private static let membersQuery = "SELECT member_id, lots_head, last_position FROM members"
    private static let transactionsQuery =
        "SELECT position, member_id, member_previous FROM transactions WHERE member_id IS NOT NULL ORDER BY position"

    private static func faults(lots lotRows: [[String?]], members: [[String?]], transactions: [[String?]]) throws
        -> [String]
    {
        struct Lot {
            var member: String
            var remaining: Int64
            var next: Int64?
        }
        var lots: [Int64: Lot] = [:]
        func int(_ text: String?) -> Int64? { text.flatMap { Int64($0) } }
        for row in lotRows {
            lots[int(row[0]) ?? -1] = Lot(member: row[1] ?? "", remaining: int(row[2]) ?? 0, next: int(row[3]))
        }
        var wrong = 0
        var twice = 0
        var onChain: Set<Int64> = []
        for member in members {
            let id = member[0] ?? ""
            var next = int(member[1])
            while let number = next {
                guard onChain.insert(number).inserted else {
                    twice += 1
                    break
                }
                guard let lot = lots[number] else {
                    wrong += 1
                    break
                }
                if lot.member != id || lot.remaining <= 0 { wrong += 1 }
                next = lot.next
            }
        }
        let off = lots.filter { $0.value.remaining > 0 && !onChain.contains($0.key) }.count
        // Each member's transactions, newest first, must be exactly its chain.
        var last: [String: Int64] = [:]
        var links = 0
        for row in transactions {
            let member = row[1] ?? ""
            if int(row[2]) != last[member] { links += 1 }
            last[member] = int(row[0])
        }
        let heads = members.filter { int($0[2]) != last[$0[0] ?? ""] }.count
        var faults: [String] = []
        if wrong > 0 { faults.append("\(wrong) chain entries are not open lots of the member") }
        if off > 0 { faults.append("\(off) open lots are off their member's chain") }
        if twice > 0 { faults.append("\(twice) lots are on a chain twice") }
        if links > 0 { faults.append("\(links) transactions link to the wrong previous one") }
        if heads > 0 { faults.append("\(heads) members' last positions are wrong") }
        return faults
    }
}
