#!/usr/bin/env python3
"""Interoperability: a POS scenario against a real edge node, with a client that is not ours.

Generates Python stubs from protos/ with grpcio-tools, then checks every answer of: enrol, earn,
redeem, a refund, an unauthenticated call and a bad amount. Exits non-zero on the first mismatch.

Usage: pos_scenario.py HOST:PORT TOKEN
"""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}")
        sys.exit(1)
    print(f"ok: {what}")


def main():
    address, token = sys.argv[1], sys.argv[2]
    out = tempfile.mkdtemp(prefix="coalition-interop-")
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{os.path.join(ROOT, 'protos')}", f"--python_out={out}",
         f"--grpc_python_out={out}", "coalition/common/v1/common.proto", "coalition/edge/v1/points.proto"],
        check=True)
    sys.path.insert(0, out)
    import grpc
    from coalition.common.v1 import common_pb2
    from coalition.edge.v1 import points_pb2, points_pb2_grpc

    auth = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(address) as channel:
        points = points_pb2_grpc.PointsStub(channel)
        member = points.Enroll(points_pb2.EnrollRequest(request_id="IO-E1", phone="+8613600000001"), metadata=auth).member
        check(len(member.member_id) == 26 and member.balance_points == 200, "enrolment gives 200 sign-up points")

        earn = points.Earn(points_pb2.EarnRequest(request_id="IO-R1", member_id=member.member_id, amount_minor=123450), metadata=auth)
        check(earn.points == 1234, "¥1,234.50 earns 1,234 points (rounded down)")
        kinds = [common_pb2.EarnComponentKind.Name(c.kind) for c in earn.breakdown.components]
        check(kinds == ["EARN_COMPONENT_KIND_BASE"] and earn.breakdown.total_points == 1234, "the breakdown explains every point")
        check(earn.balance_after_points == 1434, "the balance after the earn is 1,434")

        again = points.Earn(points_pb2.EarnRequest(request_id="IO-R1", member_id=member.member_id, amount_minor=123450), metadata=auth)
        check(again.transaction_id == earn.transaction_id, "a retry returns the original answer")

        paid = points.Redeem(
            points_pb2.RedeemRequest(request_id="IO-P1", member_id=member.member_id, bill_amount_minor=100000, points=500), metadata=auth)
        check(paid.points == 500 and paid.value_minor == 500 and paid.remaining_due_minor == 99500, "500 points pay ¥5 of ¥1,000")
        check(paid.authorization == common_pb2.REDEEM_AUTHORIZATION_FLOOR_LIMIT, "a standalone edge redeems within its floor limit")

        refund = points.Reverse(points_pb2.ReverseRequest(request_id="IO-V1", original_transaction_id=earn.transaction_id), metadata=auth)
        check(refund.points == 934 and refund.balance_after_points == 0, "a full refund takes back the 934 points the member still has")
        check(refund.withheld_points == 300 and refund.withheld_minor == 300, "the 300 points already spent are withheld from the cash refund: ¥3")

        try:
            points.GetBalance(points_pb2.GetBalanceRequest(member_id=member.member_id))
            check(False, "a call without a token is refused")
        except grpc.RpcError as error:
            check(error.code() == grpc.StatusCode.UNAUTHENTICATED, "a call without a token is UNAUTHENTICATED")

        try:
            points.Earn(points_pb2.EarnRequest(request_id="IO-R2", member_id=member.member_id, amount_minor=-5), metadata=auth)
            check(False, "a negative amount is refused")
        except grpc.RpcError as error:
            check(error.code() == grpc.StatusCode.INVALID_ARGUMENT and "amount_minor" in error.details(),
                  "a negative amount is INVALID_ARGUMENT naming amount_minor")

        try:
            points.Redeem(
                points_pb2.RedeemRequest(request_id="IO-P2", member_id=member.member_id, bill_amount_minor=1000, points=600), metadata=auth)
            check(False, "over half the bill is refused")
        except grpc.RpcError as error:
            reason = dict(error.trailing_metadata() or ()).get("coalition-reason")
            check(error.code() == grpc.StatusCode.FAILED_PRECONDITION and reason in ("OVER_BILL_SHARE", "INSUFFICIENT_POINTS"),
                  f"a refused redemption carries coalition-reason ({reason})")
    print("interop: all checks passed")


if __name__ == "__main__":
    main()
