"""The order saga: reserve stock, charge, confirm, and compensate whatever fails.

    PENDING (committed by the route before any remote call)
      │ reserve at inventory ──┬─ 409 ─────────────> OUT_OF_STOCK    409, nothing reserved
      │                        ├─ 404, 422 ────────> FAILED          422, unknown sku
      │                        └─ down, other ─────> release; FAILED 503 (504 when too slow)
      │ charge at payments ────┬─ 402 ─────────────> release; PAYMENT_FAILED 402
      │ (payments commits the  ├─ 409, 422 ────────> release; FAILED 409, 422 (nothing charged)
      │  reservation itself)   └─ down, unknown ───> release; refund if captured; FAILED 503/504
      └──────────────────────────────────────────────> CONFIRMED       201

The saga only changes the Order it is given; the route commits it. Every call relays the
customer's token and adds orders' own service token (BearerRelay), so inventory and payments each
check "a customer, via the orders service" themselves.

Retries: reserve and charge are sent once. Both are idempotent per order_id at the neighbours, but
when a charge's outcome is unknown we ask payments what happened rather than charge again.
Compensations (release, refund, the lookup by order id) are safe to repeat and are retried.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError
from relayshop_platform.errors import Conflict, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from relayshop_platform.relay import BearerRelay

from .models import Order, OrderStatus, Payment, Reservation, utcnow

log = logging.getLogger("relayshop.orders.saga")

COMPENSATION_ATTEMPTS = 3
COMPENSATION_BACKOFF_SECONDS = 0.2
Answer = TypeVar("Answer", bound=BaseModel)


class OrderSaga:
    def __init__(
        self, http: httpx.AsyncClient, relay: BearerRelay, *, inventory_url: str, payments_url: str
    ) -> None:
        self._http = http
        self._relay = relay
        self._inventory = inventory_url
        self._payments = payments_url

    async def place(self, order: Order) -> None:
        """Drive a PENDING order to a final state, with outcome_status and outcome_detail set."""
        reservation = await self._reserve(order)
        if reservation is None:
            return
        # Prices and the total come from inventory, never from the client.
        order.items = [item.model_dump() for item in reservation.items]
        order.total_cents = reservation.total_cents
        await self._charge(order, reservation.total_cents)

    async def cancel(self, order: Order) -> None:
        """Undo a CONFIRMED order: refund first (the money matters most), then give stock back.

        On any failure this raises and leaves the order CONFIRMED; both calls are idempotent at
        the neighbours, so the customer can simply cancel again.
        """
        refund = await self._send_idempotent("payments", "POST", self._refund_url(order))
        if refund.status_code == 409:
            raise Conflict(_detail(refund, "Payments refused to refund this order's payment."))
        if refund.status_code not in (200, 201):
            raise UpstreamUnavailable(f"Payments refused the refund (HTTP {refund.status_code}).")
        release = await self._send_idempotent("inventory", "POST", self._release_url(order))
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
            response = await self._http.post(
                f"{self._inventory}/api/inventory/reservations", json=body, auth=self._relay
            )
        except httpx.HTTPError as exc:
            # No answer does not mean no reservation (a timeout may come after inventory's commit).
            await self._release(order)
            error = _upstream_error("Inventory", exc)
            _finish(order, OrderStatus.FAILED, error.status, f"{error.detail} Nothing was charged.")
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
            await self._release(order)
            detail = f"Inventory could not reserve the stock (HTTP {response.status_code})."
            _finish(order, OrderStatus.FAILED, 503, f"{detail} Nothing was charged.")
        return reservation

    async def _charge(self, order: Order, amount_cents: int) -> None:
        body = {
            "order_id": order.id,
            "amount_cents": amount_cents,
            "payment_method": order.payment_method,
        }
        try:
            response = await self._http.post(
                f"{self._payments}/api/payments/charges", json=body, auth=self._relay
            )
        except httpx.HTTPError as exc:
            error = _upstream_error("Payments", exc)
            await self._settle_unknown_charge(order, error.status, error.detail)
            return
        status = response.status_code
        payment = _parse(Payment, response) if status in (200, 201) else None
        if payment is not None and payment.status == "CAPTURED":
            # Payments has already committed the reservation at inventory before answering.
            order.payment_id = payment.id
            _finish(order, OrderStatus.CONFIRMED, 201)
        elif status == 402:
            await self._release(order)
            _finish(
                order, OrderStatus.PAYMENT_FAILED, 402, "The payment was declined; stock restored."
            )
        elif status in (409, 422):
            # 409: inventory refused the commit, so payments voided the charge; 422: payments does
            # not know this payment method. Either way nothing stays charged.
            await self._release(order)
            _finish(order, OrderStatus.FAILED, status, _detail(response, "Payment not completed."))
        else:
            await self._settle_unknown_charge(order, 503, f"Payments answered HTTP {status}.")

    # ---- compensations --------------------------------------------------------------------------

    async def _settle_unknown_charge(self, order: Order, http_status: int, reason: str) -> None:
        """The charge may or may not have happened: make sure the order ends with no money taken.

        Release first. A charge still running at payments then fails its commit at inventory and
        is voided, so from here on no new charge can stick; then refund one that already did.
        """
        await self._release(order)
        if await self._refund_if_captured(order):
            _finish(order, OrderStatus.FAILED, http_status, f"{reason} Nothing was charged.")
            return
        log.error("order %s failed with an unknown payment outcome; check payments", order.id)
        _finish(
            order,
            OrderStatus.FAILED,
            http_status,
            f"{reason} The payment's outcome is unknown; contact support with the order id.",
        )

    async def _refund_if_captured(self, order: Order) -> bool:
        """True when we know that no money stays taken for this order."""
        try:
            found = await self._send_idempotent("payments", "GET", self._payment_url(order))
            if found.status_code == 404:
                return True  # no payment was ever created
            payment = _parse(Payment, found) if found.status_code == 200 else None
            if payment is None:
                return False
            if payment.status != "CAPTURED":
                return True  # DECLINED, VOIDED or already REFUNDED
            refund = await self._send_idempotent("payments", "POST", self._refund_url(order))
            return refund.status_code in (200, 201)
        except UpstreamError:
            return False

    async def _release(self, order: Order) -> None:
        """Best effort: a HELD reservation we fail to release still expires at inventory."""
        try:
            response = await self._send_idempotent("inventory", "POST", self._release_url(order))
        except UpstreamError as exc:
            log.warning("order %s: reservation not released (%s)", order.id, exc.detail)
            return
        if response.status_code not in (200, 201, 404):  # 404: nothing was reserved
            log.warning("order %s: release answered HTTP %s", order.id, response.status_code)

    async def _send_idempotent(self, service: str, method: str, url: str) -> httpx.Response:
        """Send an idempotent call (release, refund, lookup by order id), retrying lost
        connections and 5xx answers: repeating it cannot give stock back or refund twice."""
        attempt = 1
        while True:
            try:
                response = await self._http.request(method, url, auth=self._relay)
                if response.status_code < 500 or attempt >= COMPENSATION_ATTEMPTS:
                    return response
            except httpx.HTTPError as exc:
                if attempt >= COMPENSATION_ATTEMPTS:
                    raise _upstream_error(service.capitalize(), exc) from exc
            await asyncio.sleep(COMPENSATION_BACKOFF_SECONDS * attempt)
            attempt += 1

    def _release_url(self, order: Order) -> str:
        return f"{self._inventory}/api/inventory/reservations/{order.id}/release"

    def _payment_url(self, order: Order) -> str:
        return f"{self._payments}/api/payments/by-order/{order.id}"

    def _refund_url(self, order: Order) -> str:
        return f"{self._payment_url(order)}/refund"


def _finish(order: Order, status: OrderStatus, http_status: int, detail: str | None = None) -> None:
    order.status = status
    order.outcome_status = http_status
    order.outcome_detail = detail[:500] if detail else None
    order.updated_at = utcnow()


def _upstream_error(service: str, exc: httpx.HTTPError) -> UpstreamError:
    """504 when the neighbour was too slow, 503 when it could not be reached at all.

    httpx-aiohttp (the transport of create_http_client) raises httpx.ConnectTimeout for every
    aiohttp connection error, even "connection refused", so a timeout counts only when nothing
    else caused it or its cause is itself a timeout.
    """
    cause = exc.__cause__
    if isinstance(exc, httpx.TimeoutException) and (
        cause is None or isinstance(cause, TimeoutError)
    ):
        return UpstreamTimeout(f"{service} did not answer in time.")
    return UpstreamUnavailable(f"{service} is unreachable.")


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
