import GRDB

/// The ledger's chains are whole: each member's lots with points left are exactly the lots on its
/// chain (from `members.lots_head`, each once), and each member's transactions are linked newest to
/// oldest (from `members.last_position` through `transactions.member_previous`).
enum LedgerChains {
    /// What is wrong with the chains, one line per fault kind (empty when they are whole).
    static func faults(_ db: Database) throws -> [String] {
        let lots = try Row.fetchOne(
            db,
            sql: """
                WITH RECURSIVE chain (member_id, number, steps) AS (
                    SELECT member_id, lots_head, 1 FROM members WHERE lots_head IS NOT NULL
                    UNION ALL
                    SELECT c.member_id, l.next_lot, c.steps + 1 FROM lots l JOIN chain c ON l.lot_number = c.number
                    WHERE l.next_lot IS NOT NULL AND c.steps < 1000000
                )
                SELECT
                    (SELECT COUNT(*) FROM chain c LEFT JOIN lots l ON l.lot_number = c.number
                     WHERE l.lot_number IS NULL OR l.member_id != c.member_id OR l.remaining_points <= 0) AS wrong,
                    (SELECT COUNT(*) FROM lots l WHERE l.remaining_points > 0
                     AND NOT EXISTS (SELECT 1 FROM chain c WHERE c.number = l.lot_number)) AS off,
                    (SELECT COUNT(*) FROM (SELECT number FROM chain GROUP BY number HAVING COUNT(*) > 1)) AS twice
                """)
        let transactions = try Row.fetchOne(
            db,
            sql: """
                SELECT
                    (SELECT COUNT(*) FROM (
                        SELECT member_previous, LAG(position) OVER (PARTITION BY member_id ORDER BY position) AS expected
                        FROM transactions WHERE member_id IS NOT NULL
                     ) WHERE member_previous IS NOT expected) AS links,
                    (SELECT COUNT(*) FROM members m LEFT JOIN (
                        SELECT member_id, MAX(position) AS last FROM transactions WHERE member_id IS NOT NULL GROUP BY member_id
                     ) t ON t.member_id = m.member_id WHERE m.last_position IS NOT t.last) AS heads
                """)
        var faults: [String] = []
        if let lots {
            if (lots["wrong"] as Int) > 0 { faults.append("\(lots["wrong"] as Int) chain entries are not open lots of the member") }
            if (lots["off"] as Int) > 0 { faults.append("\(lots["off"] as Int) open lots are off their member's chain") }
            if (lots["twice"] as Int) > 0 { faults.append("\(lots["twice"] as Int) lots are on a chain twice") }
        }
        if let transactions {
            if (transactions["links"] as Int) > 0 {
                faults.append("\(transactions["links"] as Int) transactions link to the wrong previous one")
            }
            if (transactions["heads"] as Int) > 0 {
                faults.append("\(transactions["heads"] as Int) members' last positions are wrong")
            }
        }
        return faults
    }
}
