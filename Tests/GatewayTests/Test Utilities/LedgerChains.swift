import GRDB

/// The ledger's chains are whole: each member's lots with points left are exactly the lots on its
/// chain (from `members.lots_head`, each once), and each member's transactions are linked newest to
/// oldest (from `members.last_position` through `transactions.member_previous`). Walked in memory,
/// in time linear in the ledger.
enum LedgerChains {
    /// What is wrong with the chains, one line per fault kind (empty when they are whole).
    static func faults(_ db: Database) throws -> [String] {
        struct Lot {
            var member: String
            var remaining: Int64
            var next: Int64?
        }
        var lots: [Int64: Lot] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT lot_number, member_id, remaining_points, next_lot FROM lots") {
            lots[row[0]] = Lot(member: row[1], remaining: row[2], next: row[3])
        }
        var wrong = 0
        var twice = 0
        var onChain: Set<Int64> = []
        let members = try Row.fetchAll(db, sql: "SELECT member_id, lots_head, last_position FROM members")
        for member in members {
            let id: String = member[0]
            var next: Int64? = member[1]
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
        for row in try Row.fetchAll(
            db, sql: "SELECT position, member_id, member_previous FROM transactions WHERE member_id IS NOT NULL ORDER BY position")
        {
            let member: String = row[1]
            let previous: Int64? = row[2]
            if previous != last[member] { links += 1 }
            last[member] = row[0]
        }
        let heads = members.filter { (($0[2] as Int64?)) != last[$0[0] as String] }.count
        var faults: [String] = []
        if wrong > 0 { faults.append("\(wrong) chain entries are not open lots of the member") }
        if off > 0 { faults.append("\(off) open lots are off their member's chain") }
        if twice > 0 { faults.append("\(twice) lots are on a chain twice") }
        if links > 0 { faults.append("\(links) transactions link to the wrong previous one") }
        if heads > 0 { faults.append("\(heads) members' last positions are wrong") }
        return faults
    }
}
