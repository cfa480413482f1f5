import Core

/// How a pull page ends, for both stores (docs/protocol.md, "Pull"): the store reads up to
/// `pageSize + 1` changes of each kind after the cursor, merged in position order, and this says
/// what the page holds.
enum PullPaging {
    /// What to send of `changes` (read with a limit of `pageSize + 1`): those before the first
    /// position past the page (a page never ends inside a position: the cursor is a position, and
    /// rows after it at the same position would be skipped for good), and whether more follow.
    /// `rereadAll` is the position whose changes must all be read and sent alone, when more rows
    /// share it than a page holds (a handful at most).
    static func trim(_ changes: [LedgerChange], pageSize: Int) -> (
        changes: [LedgerChange], hasMore: Bool, rereadAll: Int64?
    ) {
        guard changes.count > pageSize else { return (changes, false, nil) }
        let boundary = changes[pageSize].position
        let kept = changes.filter { $0.position < boundary }
        return (kept, true, kept.isEmpty ? boundary : nil)
    }
}
