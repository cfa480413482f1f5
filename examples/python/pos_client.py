#!/usr/bin/env python3
"""A POS terminal written against Coalition's public protos with someone else's toolchain.

Generates Python stubs from protos/ with grpcio-tools (pip install grpcio grpcio-tools), then
enrols a member, earns, redeems and shows the balance at an edge node.

Usage: examples/python/pos_client.py HOST:PORT TOKEN [PHONE]
"""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def generate(out):
    protos = os.path.join(ROOT, "protos")
    files = ["coalition/common/v1/common.proto", "coalition/edge/v1/points.proto"]
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{protos}", f"--python_out={out}", f"--grpc_python_out={out}", *files],
        check=True,
    )
    sys.path.insert(0, out)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    address, token = sys.argv[1], sys.argv[2]
    phone = sys.argv[3] if len(sys.argv) > 3 else "+8613700000009"
    generate(tempfile.mkdtemp(prefix="coalition-py-"))
    import grpc
    from coalition.common.v1 import common_pb2
    from coalition.edge.v1 import points_pb2, points_pb2_grpc

    auth = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(address) as channel:
        points = points_pb2_grpc.PointsStub(channel)
        member = points.Enroll(points_pb2.EnrollRequest(request_id="PY-E1", phone=phone), metadata=auth).member
        print(f"enrolled {member.member_id}: {member.balance_points} points")
        earn = points.Earn(points_pb2.EarnRequest(request_id="PY-R1", member_id=member.member_id, amount_minor=88800), metadata=auth)
        print(f"earned {earn.points} points for ¥888: " + ", ".join(f"{common_pb2.EarnComponentKind.Name(c.kind)}={c.points}" for c in earn.breakdown.components))
        paid = points.Redeem(
            points_pb2.RedeemRequest(request_id="PY-P1", member_id=member.member_id, bill_amount_minor=20000, points=500), metadata=auth
        )
        print(f"paid ¥{paid.value_minor / 100:.2f} of a ¥200 bill with {paid.points} points; balance {paid.balance_after_points}")
        try:
            points.Earn(points_pb2.EarnRequest(request_id="PY-R2", member_id=member.member_id, amount_minor=0), metadata=auth)
        except grpc.RpcError as error:
            print(f"a bad amount is refused: {error.code().name}: {error.details()}")


if __name__ == "__main__":
    main()
