// Goal: the public contract keeps the services and methods the product promises, under their
// versioned package names, so integrators' generated clients keep working.
import GRPCCore
import SwiftProtobuf
import Testing
import Wire

@Suite("Wire contract")
struct ContractTests {
    @Test(
        "services and their methods",
        arguments: [
            (
                "coalition.edge.v1.Points", Coalition_Edge_V1_Points.Method.descriptors,
                [
                    "Enroll", "LookupMember", "Earn", "PreviewRedeem", "Redeem", "Reverse", "GetBalance", "History",
                    "CheckIn",
                ]
            ),
            ("coalition.edge.v1.Parking", Coalition_Edge_V1_Parking.Method.descriptors, ["Quote", "Pay", "Enter"]),
            ("coalition.edge.v1.Vouchers", Coalition_Edge_V1_Vouchers.Method.descriptors, ["Check", "Redeem"]),
            (
                "coalition.sync.v1.Sync", Coalition_Sync_V1_Sync.Method.descriptors,
                ["Push", "Pull", "AuthorizeRedeem", "ReleaseHold", "Recover", "RequestAllowance"]
            ),
            (
                "coalition.ops.v1.Ops", Coalition_Ops_V1_Ops.Method.descriptors,
                [
                    "ListSites", "SetSiteStatus", "RevokeCertificate", "ListRevokedCertificates", "ListConflicts",
                    "GetMember", "MemberHistory", "AdjustMember",
                    "ValidateProgram",
                    "PublishProgram", "ListPrograms", "CloseSettlement", "GetSettlement", "ExportSettlement",
                    "RunExpiry",
                    "ListExpiryReminders", "ListRefusedCalls", "ListCatalogStock", "AdjustStock", "ListVouchers",
                    "ListLotteryPeriods", "ListLotteryDraws", "GetOrder", "SalesReport", "CreateConsoleLogin",
                    "GetActivity",
                    "GetLiability", "GrantAllowance", "ReturnAllowance", "ListAllowances", "ListPromotionQuotas",
                ]
            ),
            (
                "coalition.member.v1.Member", Coalition_Member_V1_Member.Method.descriptors,
                [
                    "LookupMember", "GetAccount", "ListHistory", "ListCatalog", "Recommend", "PlaceOrder",
                    "CancelOrder",
                    "GetOrder", "ListOrders", "ListVouchers", "GetLottery", "Draw",
                ]
            ),
        ] as [(String, [MethodDescriptor], [String])])
    func methods(_ service: String, _ descriptors: [MethodDescriptor], _ names: [String]) {
        #expect(Set(descriptors.map(\.service.fullyQualifiedService)) == [service])
        #expect(descriptors.map(\.method) == names)
    }

    @Test("an outbox payload round-trips byte for byte")
    func payloadRoundTrip() throws {
        var earn = Coalition_Sync_V1_EarnRecord()
        earn.memberID = "01JD3X5Q7M8N9P0R1S2T3V4W5X"
        earn.amountMinor = 12_345
        earn.breakdown.totalPoints = 123
        var transaction = Coalition_Sync_V1_LocalTransaction()
        transaction.transactionID = "01JD3X5Q7M8N9P0R1S2T3V4W5Y"
        transaction.requestID = "R-1"
        transaction.merchantID = "mall-fashion"
        transaction.programVersion = 3
        transaction.earn = earn
        let bytes: [UInt8] = try transaction.serializedBytes()
        let decoded = try Coalition_Sync_V1_LocalTransaction(serializedBytes: bytes)
        #expect(decoded == transaction)
        #expect(try decoded.serializedBytes() == bytes)
    }
}
