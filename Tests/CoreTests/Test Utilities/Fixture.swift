import Core
import Testing

/// The program the Core tests compute with: the business's own numbers (¥1 = 1 point, grocery 0.5,
/// gold 1.5×, double points on Saturday 2026-11-28, +10 % cross-format within 7 days, 100 points
/// = ¥1, minimum 500 points, at most 50 % of a bill, parking ¥10 per started hour capped at ¥60 a
/// day with 15 minutes grace, 2 free hours a day for gold, expiry 12 months after the month).
enum Fixture {
    static let document: DocumentNode = [
        "program": "fixture-group",
        "name": "Fixture Group",
        "currency": ["code": "CNY", "minor_unit_digits": 2],
        "time_zone": "Asia/Shanghai",
        "limits": [
            "transaction_amount_max_minor": 10_000_000, "lines_max": 200, "points_per_transaction_max": 1_000_000,
        ],
        "offline_defaults": [
            "points_per_transaction_max": 5000, "points_per_member_per_day_max": 10000,
            "site_exposure_max_points": 200_000, "offline_minutes_max": 1440,
        ],
        "sites": [
            [
                "id": "mall-01", "name": "Mall", "format": "mall",
                "merchants": [
                    ["id": "mall-fashion", "name": "Fashion", "category": "apparel"],
                    ["id": "mall-grocer", "name": "Grocer", "category": "grocery"],
                    [
                        "id": "mall-jeweller", "name": "Jeweller", "category": "jewellery", "earn_rate": "2",
                        "settlement": ["issue_price": "1.5", "redeem_price": "1"],
                    ],
                ],
            ],
            [
                "id": "hotel-01", "name": "Hotel", "format": "hotel",
                "offline": ["points_per_transaction_max": 20000],
                "merchants": [
                    ["id": "hotel-rooms", "name": "Rooms", "category": "lodging"],
                    ["id": "hotel-restaurant", "name": "Restaurant", "category": "dining"],
                ],
            ],
            [
                "id": "park-01", "name": "Car park", "format": "parking",
                "parking": ["grace_minutes": 15, "price_per_hour_minor": 1000, "daily_cap_minor": 6000],
                "merchants": [["id": "park-operator", "name": "Parking", "category": "parking"]],
            ],
        ],
        "earn": [
            "base_rates": ["mall": "1", "hotel": "1", "parking": "1"],
            "category_rates": ["grocery": "0.5"],
            "excluded_categories": ["tobacco", "gift-cards"],
            "signup_points": 200,
            "referral_points": 300,
            "birthday": ["multiplier": "2"],
            "streak": ["days": 5, "points": 100],
            "cross_format": ["window_days": 7, "rate": "0.1"],
            "promotions": [
                [
                    "id": "double-saturday", "name": "Double points Saturday", "start": "2026-11-28",
                    "end": "2026-11-29", "filter": ["formats": ["mall"]], "multiplier": "2",
                ],
                [
                    "id": "quay-dinner", "name": "Dinner bonus", "start": "2026-11-01T17:00", "end": "2026-12-01T00:00",
                    "filter": ["merchants": ["hotel-restaurant"]], "bonus_points": 150, "budget_points": 300_000,
                ],
            ],
        ],
        "redeem": [
            "point_value": ["points": 100, "money_minor": 100],
            "minimum_points": 500,
            "maximum_bill_share": "0.5",
            "excluded_categories": ["tobacco", "gift-cards"],
        ],
        "tiers": [
            "review_months": 12,
            "levels": [
                ["id": "member", "name": "Member", "threshold": 0, "multiplier": "1"],
                [
                    "id": "silver", "name": "Silver", "threshold": 5000, "multiplier": "1.2",
                    "free_parking_minutes_per_day": 60,
                ],
                [
                    "id": "gold", "name": "Gold", "threshold": 20000, "multiplier": "1.5",
                    "free_parking_minutes_per_day": 120,
                ],
            ],
        ],
        "expiry": ["months": 12, "reminder_days": 30],
        "settlement": [
            "breakage_price": "1",
            "format_prices": [
                "mall": ["issue_price": "1.2", "redeem_price": "1"],
                "hotel": ["issue_price": "1.1", "redeem_price": "1"],
                "parking": ["issue_price": "1.2", "redeem_price": "0.9"],
            ],
        ],
    ]

    /// The fixture program, loaded.
    static let program: Program = {
        do {
            return try ProgramLoader.load(document)
        } catch {
            preconditionFailure("the fixture program does not load: \(error)")
        }
    }()

    /// The fixture with one change, loaded.
    static func program(setting path: String, to value: DocumentNode?) throws -> Program {
        try ProgramLoader.load(document.setting(path, to: value))
    }

    static let zone = ProgramTimeZone(identifier: "Asia/Shanghai")!

    /// An instant given as local time in Asia/Shanghai, `"2026-11-24T12:00"`.
    static func at(_ local: String) -> Timestamp {
        zone.instant(of: CivilDateTime(parsing: local)!)
    }

    static func date(_ text: String) -> CivilDate { CivilDate(parsing: text)! }

    static let mall = MerchantID("mall-fashion")!
    static let grocer = MerchantID("mall-grocer")!
    static let jeweller = MerchantID("mall-jeweller")!
    static let rooms = MerchantID("hotel-rooms")!
    static let restaurant = MerchantID("hotel-restaurant")!
    static let member = TierID("member")!
    static let silver = TierID("silver")!
    static let gold = TierID("gold")!

    static func yuan(_ value: Int64) -> Money { Money(minorUnits: value * 100) }
    static func fen(_ value: Int64) -> Money { Money(minorUnits: value) }
    static func line(_ category: String, _ fen: Int64) -> SaleLine {
        SaleLine(category: Category(category)!, amount: Money(minorUnits: fen))
    }
}

extension Fixture {
    /// Expects `document` to be refused with a problem at `path` whose message contains `words`.
    static func expectRefused(
        _ document: DocumentNode, at path: String, saying words: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        do {
            _ = try ProgramLoader.load(document)
            Issue.record("the document loaded", sourceLocation: sourceLocation)
        } catch {
            let match = error.errors.first { $0.path == path && $0.message.contains(words) }
            #expect(match != nil, "expected \(path): …\(words)…, got:\n\(error)", sourceLocation: sourceLocation)
        }
    }
}
