#!/usr/bin/env python3
"""Interoperability: the member app's server, with a client that is not ours.

Generates Python stubs from protos/ with grpcio-tools, then, over mutual TLS with a channel
certificate: reads a member's account and the catalog, buys a coffee voucher (a retry returns the
same order, the same request id for another item is ALREADY_EXISTS with its reason), cancels an
order, and has the voucher checked and honoured (once) at a till of the edge. Exits non-zero on the first mismatch.

Usage: member_scenario.py GATEWAY_HOST:PORT CERTS_DIR MEMBER_ID EDGE_HOST:PORT TERMINAL_TOKEN
"""
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}")
        sys.exit(1)
    print(f"ok: {what}")


def reason(error):
    return dict(error.trailing_metadata() or ()).get("coalition-reason", "")


def main():
    gateway, certs, member_id, edge, token = sys.argv[1:6]
    out = tempfile.mkdtemp(prefix="coalition-interop-")
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{os.path.join(ROOT, 'protos')}", f"--python_out={out}",
         f"--grpc_python_out={out}", "coalition/member/v1/member.proto", "coalition/edge/v1/vouchers.proto"],
        check=True)
    sys.path.insert(0, out)
    import grpc
    from coalition.member.v1 import member_pb2, member_pb2_grpc
    from coalition.edge.v1 import vouchers_pb2, vouchers_pb2_grpc

    def read(name):
        with open(os.path.join(certs, name), "rb") as file:
            return file.read()

    credentials = grpc.ssl_channel_credentials(
        root_certificates=read("ca.pem"), private_key=read("app.key"), certificate_chain=read("app.pem"))
    with grpc.secure_channel(gateway, credentials) as channel:
        api = member_pb2_grpc.MemberStub(channel)
        account = api.GetAccount(member_pb2.GetAccountRequest(member_id=member_id))
        check(account.balance_points == 6200 and account.available_points == 6200, "the account shows 6,200 points")
        mall = [f for f in account.by_format if f.format == "mall"]
        check(len(mall) == 1 and mall[0].earned_points == 6200, "this year's 6,200 points were earned at the mall")
        check(account.next_tier.tier == "gold", "the next tier is gold")

        items = {item.item_id: item for item in api.ListCatalog(member_pb2.ListCatalogRequest()).items}
        check(items["coffee"].kind == member_pb2.ITEM_KIND_VOUCHER and items["coffee"].price_points == 1500,
              "the catalog lists the coffee voucher at 1,500 points")

        order = api.PlaceOrder(member_pb2.PlaceOrderRequest(request_id="PY-1", member_id=member_id, item_id="coffee"))
        check(order.order.points == 1500 and order.balance_after_points == 4700, "an order takes 1,500 points")
        check(len(order.order.vouchers) == 1 and order.order.vouchers[0].code.startswith("CV"), "it issues one voucher")
        again = api.PlaceOrder(member_pb2.PlaceOrderRequest(request_id="PY-1", member_id=member_id, item_id="coffee"))
        check(again.order.order_id == order.order.order_id and again.balance_after_points == 4700,
              "a retry returns the same order and takes nothing")
        try:
            api.PlaceOrder(member_pb2.PlaceOrderRequest(request_id="PY-1", member_id=member_id, item_id="harbour-mug"))
            check(False, "the same request id for another item is refused")
        except grpc.RpcError as error:
            check(error.code() == grpc.StatusCode.ALREADY_EXISTS and reason(error) == "REQUEST_ID_REUSED",
                  "the same request id for another item is ALREADY_EXISTS (REQUEST_ID_REUSED)")
        try:
            api.PlaceOrder(member_pb2.PlaceOrderRequest(request_id="PY-2", member_id=member_id, item_id="gold-lounge"))
            check(False, "a gold-only item is refused to a silver member")
        except grpc.RpcError as error:
            check(error.code() == grpc.StatusCode.FAILED_PRECONDITION and reason(error) == "TIER_NOT_ALLOWED",
                  "a gold-only item is FAILED_PRECONDITION (TIER_NOT_ALLOWED)")
        second = api.PlaceOrder(member_pb2.PlaceOrderRequest(request_id="PY-3", member_id=member_id, item_id="coffee"))
        cancelled = api.CancelOrder(member_pb2.CancelOrderRequest(order_id=second.order.order_id))
        check(cancelled.order.status == member_pb2.ORDER_STATUS_CANCELLED and cancelled.balance_after_points == 4700,
              "a cancelled order gives its points back")

    auth = (("authorization", f"Bearer {token}"),)
    code = order.order.vouchers[0].code
    with grpc.insecure_channel(edge) as channel:
        till = vouchers_pb2_grpc.VouchersStub(channel)
        answer = None
        deadline = time.time() + 20
        while answer is None:
            try:
                answer = till.Check(vouchers_pb2.CheckVoucherRequest(code=code), metadata=auth)
            except grpc.RpcError as error:
                if time.time() > deadline:
                    check(False, f"the till checks the voucher (last answer {error.code()} {reason(error)})")
                time.sleep(0.2)
        check(answer.item_id == "coffee" and answer.voucher_id == order.order.vouchers[0].voucher_id,
              "the till honours the voucher: a coffee")
        try:
            till.Check(vouchers_pb2.CheckVoucherRequest(code=code[:-8]), metadata=auth)
            check(False, "a partial scan is refused")
        except grpc.RpcError as error:
            check(error.code() == grpc.StatusCode.INVALID_ARGUMENT and reason(error) == "VOUCHER_MALFORMED",
                  "a partial scan is INVALID_ARGUMENT (VOUCHER_MALFORMED)")
        used = till.Redeem(vouchers_pb2.RedeemVoucherRequest(request_id="PY-USE-1", code=code), metadata=auth)
        check(used.transaction_id != "" and used.voucher.item_id == "coffee", "the till honours the voucher")
        again = till.Redeem(vouchers_pb2.RedeemVoucherRequest(request_id="PY-USE-1", code=code), metadata=auth)
        check(again.transaction_id == used.transaction_id, "a retried use gets the same answer")
        try:
            till.Redeem(vouchers_pb2.RedeemVoucherRequest(request_id="PY-USE-2", code=code), metadata=auth)
            check(False, "a second use is refused")
        except grpc.RpcError as error:
            check(error.code() == grpc.StatusCode.FAILED_PRECONDITION and reason(error) == "VOUCHER_USED",
                  "a second use is FAILED_PRECONDITION (VOUCHER_USED)")
    print("interop: all checks passed")


if __name__ == "__main__":
    main()
