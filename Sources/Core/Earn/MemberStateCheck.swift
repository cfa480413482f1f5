/// A tier a member held from a position of the gateway's log on (until the next spell).
package struct TierSpell: Hashable, Sendable {
    /// The position at which the member took the tier (0 for "since before any record").
    package var position: Int64
    package var tier: TierID

    package init(position: Int64, tier: TierID) {
        self.position = position
        self.tier = tier
    }
}

/// What the gateway records of a member, to check the member state an edge says it used.
package struct RecordedMemberState: Hashable, Sendable {
    /// The member's state now (the surviving record's, after a merge).
    package var current: MemberEarnState
    /// Every tier the member has had, in position order.
    package var tiers: [TierSpell]
    /// The birth months the member is known by: the record the edge named and, after a merge, the
    /// record it merged into (nil: not given).
    package var birthMonths: [Int?]

    package init(current: MemberEarnState, tiers: [TierSpell], birthMonths: [Int?]) {
        self.current = current
        self.tiers = tiers
        self.birthMonths = birthMonths
    }
}

/// The member state an earn is posted with, and which stated inputs were not the member's.
package struct CheckedMemberState: Hashable, Sendable {
    package var state: MemberEarnState
    /// The inputs replaced by the gateway's record (`tier`, `birth_month`, `last_earn`, `streak`);
    /// empty when every stated input is one an honest replica could have used.
    package var replaced: [String]
}

/// DESIGN §8: an edge is trusted with what it saw (a bill), never with what the gateway knows
/// better. The member state an edge states for an earn is checked against the gateway's record,
/// allowing only the staleness an honest offline replica can have; an input outside it is replaced
/// by the gateway's own. docs/rules.md, "Member state an edge states", has the rules:
///
/// - tier: one the member held at some moment at or after `replicaPosition`, the position of the
///   gateway's log the edge's replica had reached (tiers change at known positions);
/// - birth month: the named record's or, after a merge, the survivor's (birth months never change);
/// - last earn per format: no later than the gateway's last earn at that format plus
///   `toleranceMilliseconds` (every earn an honest edge knows of was posted before this one: those
///   in its snapshot by construction, its own by sequence; the tolerance covers the gateway
///   recording an earn from a fast edge clock at its own time);
/// - streak: ending no later than the gateway's streak. (Its length cannot be bounded from the
///   record: the gateway's streak follows posting order, so an offline site's earns posted late do
///   not lengthen it, and an honest edge may know a longer streak ending on the same day.)
package enum MemberStateCheck: Sendable {
    package static func check(
        stated: MemberEarnState, replicaPosition: Int64, record: RecordedMemberState, toleranceMilliseconds: Int64
    ) -> CheckedMemberState {
        var state = stated
        var replaced: [String] = []
        if stated.tier != record.current.tier,
            !tiersHeld(since: replicaPosition, spells: record.tiers, current: record.current.tier).contains(stated.tier)
        {
            state.tier = record.current.tier
            replaced.append("tier")
        }
        if !record.birthMonths.contains(stated.birthMonth) {
            state.birthMonth = record.current.birthMonth
            replaced.append("birth_month")
        }
        var lastEarn: [Format: Timestamp] = [:]
        var lastEarnReplaced = false
        if !stated.lastEarnByFormat.isEmpty { lastEarn.reserveCapacity(stated.lastEarnByFormat.count) }
        for (format, time) in stated.lastEarnByFormat {
            if let recorded = record.current.lastEarnByFormat[format] {
                if time.milliseconds <= recorded.milliseconds + toleranceMilliseconds {
                    lastEarn[format] = time
                } else {
                    lastEarn[format] = recorded
                    lastEarnReplaced = true
                }
            } else {
                lastEarnReplaced = true
            }
        }
        if lastEarnReplaced {
            state.lastEarnByFormat = lastEarn
            replaced.append("last_earn")
        }
        if let streak = stated.streak, !plausible(streak, recorded: record.current.streak) {
            state.streak = record.current.streak
            replaced.append("streak")
        }
        return CheckedMemberState(state: state, replaced: replaced)
    }

    /// The tiers a member held at some moment at or after `position`: the spell in force at that
    /// position and every later one (the current tier when no spell is recorded).
    package static func tiersHeld(since position: Int64, spells: [TierSpell], current: TierID) -> Set<TierID> {
        let ordered = spells.sorted { $0.position < $1.position }
        guard !ordered.isEmpty else { return [current] }
        var held: Set<TierID> = [current]
        if let inForce = ordered.last(where: { $0.position <= position }) { held.insert(inForce.tier) }
        for spell in ordered where spell.position > position { held.insert(spell.tier) }
        // A position before the first spell: the member's first tier.
        if ordered[0].position > position { held.insert(ordered[0].tier) }
        return held
    }

    private static func plausible(_ stated: Streak, recorded: Streak?) -> Bool {
        guard let recorded else { return false }
        return stated.lastDay <= recorded.lastDay
    }
}
