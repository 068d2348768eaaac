"""End to end: the order saga under faults, on real processes that really die.

One stack of its own (it kills things), with short limits: a request's saga gives up after 3 s
and the reconciler looks every 0.5 s, so a PENDING order is finished within seconds of the
restart. orders pauses 1 s between reserve and charge (a fault setting), so every order spends
a known moment mid-saga, which is where the kills land. Each scenario injects its fault,
restarts what it broke, waits until no order is PENDING, and then checks the invariants of the
issue (check_invariants):

- every order is final; for a CONFIRMED one exactly one payment, CAPTURED for the order's total,
  and its reservation COMMITTED; for any other no captured payment and no stock held;
- sum(stock) + sum(committed quantities) never changes, and no stock is negative;
- at most one payment per order, whatever was retried.

The scenarios run in file order on the shared stack; the last one restarts the whole stack and
checks that every record survived. Reads use the admin's read-only audit routes on each
service's own port (orders, payments, inventory reservations and products).
"""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from relayshop_devtools.devstack import Client, Stack, make_stack

SAGA_TIMEOUT = 3.0
FINAL_WITHIN = 30.0
VISA = "pm_card_visa"
SKUS = ("KB-001", "MS-002", "CB-005")
FAULT_ENV = {
    "RELAYSHOP_SAGA_TIMEOUT_SECONDS": str(SAGA_TIMEOUT),
    "RELAYSHOP_RECONCILE_INTERVAL_SECONDS": "0.5",
    "RELAYSHOP_FAULT_DELAY_BEFORE_CHARGE_SECONDS": "1",
}
_tokens: dict[str, tuple[str, float]] = {}


def token(client: Client, user: str) -> str:
    """A user's access token, signed in again when it is a minute from expiring (300 s)."""
    cached = _tokens.get(user)
    if cached is None or time.monotonic() - cached[1] > 240:
        cached = (client.access(user), time.monotonic())
        _tokens[user] = cached
    return cached[0]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from make_stack(tmp_path_factory.mktemp("fault-stack"), env=dict(FAULT_ENV))


@pytest.fixture(scope="module")
def client(stack: Stack) -> Client:
    return Client(stack)


@pytest.fixture(scope="module")
def goods(client: Client) -> int:
    """sum(stock) + sum(committed quantities) at the start: what every scenario must keep."""
    return audit(client)["goods"]


# ---- reading the whole system, and the invariants ----------------------------------------------


def read_all(client: Client, service: str, path: str, page: int) -> list[dict[str, Any]]:
    admin = token(client, "admin")
    rows: list[dict[str, Any]] = []
    for offset in itertools.count(0, page):
        params = {"limit": page, "offset": offset}
        response = client.request("GET", path, admin, service=service, params=params)
        assert response.status_code == 200, response.text
        rows += response.json()
        if len(response.json()) < page:
            return rows
    raise AssertionError("unreachable")


def audit(client: Client) -> dict[str, Any]:
    # Orders first, then payments, then inventory: an order is final only once its compensation
    # is done, so whatever a final order says happened elsewhere is there when read after it.
    # (Read the other way round, an order could turn FAILED between the two reads, after its
    # reservation was read still HELD.)
    orders = read_all(client, "orders", "/api/orders", 200)
    payments = read_all(client, "payments", "/api/payments", 500)
    admin = token(client, "admin")
    reservations = read_all(client, "inventory", "/api/inventory/reservations", 1000)
    products = client.request("GET", "/api/inventory/products", admin, service="inventory")
    assert products.status_code == 200, products.text
    committed = sum(
        item["quantity"]
        for reservation in reservations
        if reservation["status"] == "COMMITTED"
        for item in reservation["items"]
    )
    stock = {product["sku"]: product["stock"] for product in products.json()}
    return {
        "orders": orders,
        "payments": payments,
        "reservations": {reservation["order_id"]: reservation for reservation in reservations},
        "stock": stock,
        "goods": sum(stock.values()) + committed,
    }


def wait_all_final(client: Client) -> dict[str, Any]:
    deadline = time.monotonic() + FINAL_WITHIN
    while True:
        state = audit(client)
        pending = [order["id"] for order in state["orders"] if order["status"] == "PENDING"]
        if not pending:
            return state
        assert time.monotonic() < deadline, f"still PENDING after {FINAL_WITHIN:.0f} s: {pending}"
        time.sleep(0.25)


def check_invariants(state: dict[str, Any], goods: int) -> None:
    payments_of: dict[str, list[dict[str, Any]]] = {}
    for payment in state["payments"]:
        payments_of.setdefault(payment["order_id"], []).append(payment)
    assert all(len(found) == 1 for found in payments_of.values()), "an order paid twice"
    for order in state["orders"]:
        payments = payments_of.get(order["id"], [])
        reservation = state["reservations"].get(order["id"])
        if order["status"] == "CONFIRMED":
            assert [p["status"] for p in payments] == ["CAPTURED"], order
            assert payments[0]["id"] == order["payment_id"]
            assert payments[0]["amount_cents"] == order["total_cents"]
            assert reservation is not None and reservation["status"] == "COMMITTED", order
            reserved = {item["sku"]: item["quantity"] for item in reservation["items"]}
            assert reserved == {item["sku"]: item["quantity"] for item in order["items"]}
        else:
            assert "CAPTURED" not in [p["status"] for p in payments], order
            assert reservation is None or reservation["status"] == "RELEASED", order
    assert all(stock >= 0 for stock in state["stock"].values())
    assert state["goods"] == goods, "stock plus committed quantities changed"


# ---- placing orders --------------------------------------------------------------------------


def place(client: Client, token: str, sku: str = "KB-001", quantity: int = 1) -> httpx.Response:
    body = {"items": [{"sku": sku, "quantity": quantity}], "payment_method": VISA}
    try:
        return client.request("POST", "/api/orders", token, service="orders", json=body)
    except httpx.HTTPError as exc:  # orders itself was killed under this request
        return httpx.Response(599, text=type(exc).__name__)


def in_background(work: Callable[[], httpx.Response]) -> concurrent.futures.Future[httpx.Response]:
    pool = concurrent.futures.ThreadPoolExecutor(1)
    future = pool.submit(work)
    pool.shutdown(wait=False)
    return future


def wait_held(client: Client, known: set[str]) -> str:
    """The order id of the first HELD reservation not in ``known``: the saga is mid-way."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for order_id, reservation in audit(client)["reservations"].items():
            if reservation["status"] == "HELD" and order_id not in known:
                return order_id
        time.sleep(0.05)
    raise AssertionError("no reservation was held")


def restart(stack: Stack, service: str, **env: str) -> None:
    """Restart ``service`` with these extra settings (none: back to the stack's own). Killed,
    not stopped: a graceful stop would wait for the requests a slow fault keeps open."""
    stack.kill_service(service)
    stack.extra_env.update(env)
    try:
        stack.start_service(service)
    finally:
        for key in env:
            stack.extra_env.pop(key, None)


# ---- the scenarios -----------------------------------------------------------------------------


def test_kill_payments_while_orders_are_placed(stack: Stack, client: Client, goods: int) -> None:
    alice = token(client, "alice")
    answers: list[int] = []
    stop = threading.Event()

    def customer(index: int) -> None:
        for n in itertools.count():
            if stop.is_set():
                return
            answers.append(place(client, alice, SKUS[(index + n) % 3], 1 + n % 2).status_code)

    workers = [threading.Thread(target=customer, args=(index,)) for index in range(4)]
    for worker in workers:
        worker.start()
    try:
        deadline = time.monotonic() + 10
        while answers.count(201) < 4:  # orders are flowing: now kill payments under them
            assert time.monotonic() < deadline, answers
            time.sleep(0.02)
        stack.kill_service("payments")
        placed_before_kill = len(answers)
        while len(answers) < placed_before_kill + 4:  # a few more meet payments down
            time.sleep(0.02)
        stack.start_service("payments")
    finally:
        stop.set()
        for worker in workers:
            worker.join(30)

    state = wait_all_final(client)
    check_invariants(state, goods)
    assert {503, 504} & set(answers), "no order met the dead payments service"
    assert any(order["status"] == "CONFIRMED" for order in state["orders"])


def test_slow_payments_answer_leaves_nothing_charged(
    stack: Stack, client: Client, goods: int
) -> None:
    # Payments captures and commits, then answers after the saga has given up.
    restart(stack, "payments", RELAYSHOP_FAULT_ANSWER_DELAY_SECONDS=str(SAGA_TIMEOUT + 1))
    try:
        alice = token(client, "alice")
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda sku: place(client, alice, sku), SKUS[:2]))
    finally:
        restart(stack, "payments")

    # The saga ran out of time waiting: it cannot know yet, so it says the order is PENDING.
    assert [answer.status_code for answer in answers] == [504, 504]
    assert {answer.json()["order_status"] for answer in answers} == {"PENDING"}
    state = wait_all_final(client)
    check_invariants(state, goods)
    # The reconciler then decides from the facts: captured and committed is a sale (CONFIRMED);
    # if the saga had released the stock in time, the capture is refunded (FAILED).
    slow = {answer.json()["order_id"] for answer in answers}
    assert {o["status"] for o in state["orders"] if o["id"] in slow} <= {"CONFIRMED", "FAILED"}


def test_kill_orders_between_reserve_and_charge_and_stop_inventory_during_commit(
    stack: Stack, client: Client, goods: int
) -> None:
    alice = token(client, "alice")
    known = set(audit(client)["reservations"])

    # 1. kill -9 orders while it holds a reservation and has not charged yet (its 1 s pause).
    in_background(lambda: place(client, alice, "MS-002", 2))
    killed = wait_held(client, known)
    stack.kill_service("orders")
    stack.start_service("orders")

    # 2. stop inventory while orders pauses: payments captures, then cannot commit. (Killed:
    # instant, so the stop surely lands within orders' 1 s pause.)
    known.add(killed)
    answer = in_background(lambda: place(client, alice, "CB-005", 3))
    stopped = wait_held(client, known)
    stack.kill_service("inventory")
    assert answer.result(30).status_code in (503, 504)  # the saga could not finish
    stack.start_service("inventory")

    state = wait_all_final(client)
    check_invariants(state, goods)
    status = {order["id"]: order["status"] for order in state["orders"]}
    assert status[killed] == "FAILED" and status[stopped] == "FAILED"
    assert state["reservations"][killed]["status"] == "RELEASED"
    assert [p["status"] for p in state["payments"] if p["order_id"] == stopped] == ["VOIDED"]


def test_system_routes_are_not_reachable_from_outside(client: Client) -> None:
    admin = token(client, "admin")
    for path in (
        "/api/inventory/system/reservations/o-1",
        "/api/payments/system/by-order/o-1",
    ):
        assert client.request("GET", path, admin).status_code == 403  # the gateway's rule
        assert client.request("GET", path, admin, service=path.split("/")[2]).status_code == 403


def test_full_restart_after_kill_keeps_every_record(
    stack: Stack, client: Client, goods: int
) -> None:
    before = wait_all_final(client)
    assert before["orders"], "the scenarios above placed no orders"

    for label in list(stack.processes):  # kill -9 everything: committed data must survive
        stack.kill_service(label)
    stack.start()

    after = audit(client)
    assert after["orders"] == before["orders"]
    assert after["payments"] == before["payments"]
    assert after["reservations"] == before["reservations"]
    assert after["stock"] == before["stock"]
    check_invariants(after, goods)
