"""The order saga: reserve stock, charge, confirm, and compensate whatever fails.

    PENDING (committed by the route, with the request's lease, before any remote call)
      │ reserve at inventory ──┬─ 409 ─────────────> OUT_OF_STOCK    409, nothing reserved
      │                        ├─ 404, 422 ────────> FAILED          422, unknown sku
      │                        └─ down, other ─────> release; FAILED 503 (504 when too slow)
      │ charge at payments ────┬─ 402 ─────────────> release; PAYMENT_FAILED 402
      │ (payments commits the  ├─ 409, 422 ────────> release; FAILED 409, 422 (nothing charged)
      │  reservation itself)   └─ down, unknown ───> release; refund if captured; FAILED 503/504
      └──────────────────────────────────────────────> CONFIRMED       201

A final state is only ever written once its compensation is known to be done. When it is not
(a neighbour is down, the lease ran out), the order stays PENDING, the answer is 503/504 with
``order_status: PENDING``, and the reconciler finishes it as soon as the neighbours answer again:
recover() below, from what inventory and payments then say (reconciler.py).

The saga only changes the Order it is given; its caller writes it (leases.save). The request's
saga relays the customer's token plus orders' service token (Routes.relayed: inventory and
payments each check "a customer, via orders"); the reconciler, with no customer present, uses
orders' own token on the narrow system routes (Routes.system). Retries: see calls.py.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError
from relayshop_platform.errors import Conflict, UpstreamError, UpstreamUnavailable
from relayshop_platform.relay import never_sent, upstream_error

from .calls import Calls, OutOfTime
from .models import Order, OrderStatus, Payment, Reservation, utcnow

log = logging.getLogger(__name__)

Answer = TypeVar("Answer", bound=BaseModel)
NO_PAYMENT = "NONE"
# The services the saga calls, each with tokens of its own (calls.Calls takes one auth per callee).
CALLEES = ("inventory", "payments")


@dataclass(frozen=True)
class Routes:
    """Where the saga's calls go: the relayed internal routes, or the system routes."""

    inventory: str
    payments: str
    system: bool = False

    def reserve(self) -> str:
        return f"{self.inventory}/api/inventory/reservations"

    def charge(self) -> str:
        return f"{self.payments}/api/payments/charges"

    def reservation(self, order_id: str) -> str:
        prefix = "/api/inventory/system" if self.system else "/api/inventory"
        return f"{self.inventory}{prefix}/reservations/{order_id}"

    def release(self, order_id: str) -> str:
        return f"{self.reservation(order_id)}/release"

    def payment(self, order_id: str) -> str:
        prefix = "/api/payments/system" if self.system else "/api/payments"
        return f"{self.payments}{prefix}/by-order/{order_id}"

    def refund(self, order_id: str) -> str:
        return f"{self.payment(order_id)}/refund"


class OrderSaga:
    def __init__(self, calls: Calls, routes: Routes, *, delay_before_charge: float = 0.0) -> None:
        self._calls = calls
        self._routes = routes
        self._delay_before_charge = delay_before_charge  # fault injection, tests only

    async def place(self, order: Order) -> None:
        """Drive a PENDING order to a final state (or leave it PENDING for the reconciler),
        with outcome_status and outcome_detail set."""
        reservation = await self._reserve(order)
        if reservation is None:
            return
        # Prices and the total come from inventory, never from the client.
        order.items = [item.model_dump() for item in reservation.items]
        order.total_cents = reservation.total_cents
        if self._delay_before_charge:
            await asyncio.sleep(self._delay_before_charge)
        await self._charge(order, reservation.total_cents)

    async def recover(self, order: Order) -> None:
        """Finish an order whose saga was interrupted, from what the neighbours say now.

        Captured and committed: the sale happened, only orders did not hear of it -> CONFIRMED.
        Anything else is compensated, release first (see _settle_after_release).
        """
        try:
            payment = await self._look_up(Payment, "payments", self._routes.payment(order.id))
            reservation = await self._look_up(
                Reservation, "inventory", self._routes.reservation(order.id)
            )
        except UpstreamError as exc:
            _unsettled(order, exc.status, exc.detail)
            return
        if (
            payment is not None
            and payment.status == "CAPTURED"
            and reservation is not None
            and reservation.status == "COMMITTED"
        ):
            order.items = [item.model_dump() for item in reservation.items]
            order.total_cents = reservation.total_cents
            order.payment_id = payment.id
            _finish(order, OrderStatus.CONFIRMED, 201)
            return
        await self._settle_after_release(
            order, 503, "The order was interrupted before it completed."
        )

    async def cancel(self, order: Order) -> None:
        """Undo a CONFIRMED order: refund first (the money matters most), then give stock back.

        On any failure this raises and leaves the order CONFIRMED; both calls are idempotent at
        the neighbours, so the customer can simply cancel again.
        """
        refund = await self._calls.idempotent("payments", "POST", self._routes.refund(order.id))
        if refund.status_code == 409:
            raise Conflict(_detail(refund, "Payments refused to refund this order's payment."))
        if refund.status_code not in (200, 201):
            raise UpstreamUnavailable(f"Payments refused the refund (HTTP {refund.status_code}).")
        release = await self._calls.idempotent("inventory", "POST", self._routes.release(order.id))
        if release.status_code not in (200, 201, 404):  # 404: nothing held any more
            raise UpstreamUnavailable(f"Inventory refused to release (HTTP {release.status_code}).")
        order.status = OrderStatus.CANCELLED
        order.updated_at = utcnow()

    # ---- the two forward steps ----------------------------------------------------------------

    async def _reserve(self, order: Order) -> Reservation | None:
        body = {
            "order_id": order.id,
            "items": [{"sku": item["sku"], "quantity": item["quantity"]} for item in order.items],
        }
        try:
            response = await self._calls.once("inventory", "POST", self._routes.reserve(), body)
        except OutOfTime as exc:
            _finish(order, OrderStatus.FAILED, exc.status, f"{exc.detail} Nothing was charged.")
            return None
        except httpx.HTTPError as exc:
            error = upstream_error(exc, "inventory")
            detail = f"{error.detail} Nothing was charged."
            if never_sent(exc):
                _finish(order, OrderStatus.FAILED, error.status, detail)
            else:
                # No answer does not mean no reservation (a timeout may come after inventory's
                # commit): give back whatever may be held.
                await self._release_then(order, OrderStatus.FAILED, error.status, detail)
            return None
        if response.status_code == 409:  # all or nothing at inventory: nothing is held
            detail = _detail(response, "Not enough stock for this order.")
            _finish(order, OrderStatus.OUT_OF_STOCK, 409, f"{detail} Nothing was charged.")
            return None
        if response.status_code in (404, 422):  # an unknown sku, or one inventory refuses
            detail = _detail(response, "An item has an unknown sku.")
            _finish(order, OrderStatus.FAILED, 422, detail)
            return None
        reservation = _parse(Reservation, response) if response.status_code in (200, 201) else None
        if reservation is None:
            detail = f"Inventory could not reserve the stock (HTTP {response.status_code})."
            await self._release_then(
                order, OrderStatus.FAILED, 503, f"{detail} Nothing was charged."
            )
        return reservation

    async def _charge(self, order: Order, amount_cents: int) -> None:
        body = {
            "order_id": order.id,
            "amount_cents": amount_cents,
            "payment_method": order.payment_method,
        }
        try:
            response = await self._calls.once("payments", "POST", self._routes.charge(), body)
        except OutOfTime as exc:  # never sent: nothing can have been charged
            await self._release_then(
                order, OrderStatus.FAILED, exc.status, f"{exc.detail} Nothing was charged."
            )
            return
        except httpx.HTTPError as exc:
            error = upstream_error(exc, "payments")
            if never_sent(exc):
                await self._release_then(
                    order, OrderStatus.FAILED, error.status, f"{error.detail} Nothing was charged."
                )
            else:
                await self._settle_after_release(order, error.status, error.detail)
            return
        status = response.status_code
        payment = _parse(Payment, response) if status in (200, 201) else None
        if payment is not None and payment.status == "CAPTURED":
            # Payments has already committed the reservation at inventory before answering.
            order.payment_id = payment.id
            _finish(order, OrderStatus.CONFIRMED, 201)
        elif status == 402:
            await self._release_then(
                order, OrderStatus.PAYMENT_FAILED, 402, "The payment was declined; stock restored."
            )
        elif status in (409, 422):
            # 409: inventory refused the commit, so payments voided the charge; 422: payments does
            # not know this payment method. Either way nothing stays charged.
            detail = _detail(response, "Payment not completed.")
            await self._release_then(order, OrderStatus.FAILED, status, detail)
        else:
            await self._settle_after_release(order, 503, f"Payments answered HTTP {status}.")

    # ---- compensations --------------------------------------------------------------------------

    async def _release_then(
        self, order: Order, status: OrderStatus, http_status: int, detail: str
    ) -> None:
        """Give the stock back, then finish; if the release cannot be confirmed, stay PENDING."""
        if await self._release(order):
            _finish(order, status, http_status, detail)
        else:
            _unsettled(order, http_status, detail)

    async def _settle_after_release(self, order: Order, http_status: int, reason: str) -> None:
        """The charge may or may not have happened: make sure the order ends with no money taken.

        Release first. A charge still running at payments then fails its commit at inventory and
        is voided, so from here on no new charge can stick; then refund one that already did.
        """
        if not await self._release(order):
            _unsettled(order, http_status, reason)
            return
        payment = await self._money_back(order)
        if payment is None:
            _unsettled(order, http_status, f"{reason} The payment's outcome is not known yet.")
        elif payment == "DECLINED":
            _finish(order, OrderStatus.PAYMENT_FAILED, 402, "The payment was declined.")
        elif payment == "REFUNDED":
            _finish(order, OrderStatus.FAILED, http_status, f"{reason} The charge was refunded.")
        else:
            _finish(order, OrderStatus.FAILED, http_status, f"{reason} Nothing was charged.")

    async def _money_back(self, order: Order) -> str | None:
        """After the release: the payment's final status ("NONE" if there is none), refunding a
        capture first; None while payments cannot tell."""
        try:
            payment = await self._look_up(Payment, "payments", self._routes.payment(order.id))
            if payment is None:
                return NO_PAYMENT
            if payment.status != "CAPTURED":
                return payment.status  # DECLINED, VOIDED or already REFUNDED
            refund = await self._calls.idempotent("payments", "POST", self._routes.refund(order.id))
        except UpstreamError:
            return None
        # Anything but a refund (a 409: voided meanwhile) is looked at again next round.
        return "REFUNDED" if refund.status_code in (200, 201) else None

    async def _release(self, order: Order) -> bool:
        """True once inventory holds nothing for this order (released now, or never reserved)."""
        try:
            response = await self._calls.idempotent(
                "inventory", "POST", self._routes.release(order.id)
            )
        except UpstreamError as exc:
            log.warning("order %s: reservation not released (%s)", order.id, exc.detail)
            return False
        if response.status_code in (200, 201, 404):  # 404: nothing was reserved
            return True
        log.warning("order %s: release answered HTTP %s", order.id, response.status_code)
        return False

    async def _look_up(self, model: type[Answer], service: str, url: str) -> Answer | None:
        """The neighbour's record for this order, None if it has none (404)."""
        response = await self._calls.idempotent(service, "GET", url)
        if response.status_code == 404:
            return None
        found = _parse(model, response) if response.status_code == 200 else None
        if found is None:
            raise UpstreamUnavailable(
                f"The {service} service answered HTTP {response.status_code}."
            )
        return found


def _finish(order: Order, status: OrderStatus, http_status: int, detail: str | None = None) -> None:
    order.status = status
    order.outcome_status = http_status
    order.outcome_detail = detail[:500] if detail else None
    order.updated_at = utcnow()


def _unsettled(order: Order, http_status: int, detail: str) -> None:
    """Not final yet: the answer is an error, the order stays PENDING for the reconciler."""
    log.warning("order %s left PENDING for the reconciler: %s", order.id, detail)
    order.outcome_status = http_status
    order.outcome_detail = f"{detail} The order is being settled; check it again shortly."[:500]
    order.updated_at = utcnow()


def _parse(model: type[Answer], response: httpx.Response) -> Answer | None:
    try:
        return model.model_validate_json(response.content)
    except ValidationError:
        return None


def _detail(response: httpx.Response, default: str) -> str:
    """The neighbour's problem detail (RFC 9457), when it sent a readable one."""
    try:
        body = response.json()
    except ValueError:
        return default
    detail = body.get("detail") if isinstance(body, dict) else None
    return detail[:300] if isinstance(detail, str) and detail else default
