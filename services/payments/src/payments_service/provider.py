"""A simulated card processor, speaking Stripe's test payment method names.

    pm_card_visa            approved: the charge is captured
    pm_card_chargeDeclined  declined by the issuer
    anything else           unknown payment method (422)

Like a real processor it takes an idempotency key (Stripe's ``Idempotency-Key``): the same key
returns the first charge again instead of capturing twice. Payments passes the order id, so a
retry or a concurrent duplicate can never take the money twice, even before our own database's
unique order_id has had its say. Refunds are idempotent per charge for the same reason.
Swap this module for a real client; nothing else in the service needs to change.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from relayshop_platform.errors import InvalidInput

APPROVED_METHODS = frozenset({"pm_card_visa"})
DECLINED_METHODS = frozenset({"pm_card_chargeDeclined"})


@dataclass(frozen=True, slots=True)
class ProviderCharge:
    id: str
    captured: bool
    amount_cents: int


class SimulatedProvider:
    def __init__(self) -> None:
        self.charges: dict[str, ProviderCharge] = {}  # idempotency key -> the first result
        self.refunded: set[str] = set()  # charge ids whose money went back

    async def charge(
        self, *, payment_method: str, amount_cents: int, idempotency_key: str
    ) -> ProviderCharge:
        previous = self.charges.get(idempotency_key)
        if previous is not None:
            return previous
        if payment_method in APPROVED_METHODS:
            captured = True
        elif payment_method in DECLINED_METHODS:
            captured = False
        else:
            # Never echo the value: a confused client may have sent a card number here.
            raise InvalidInput("unknown payment method")
        charge = ProviderCharge("ch_" + uuid.uuid4().hex, captured, amount_cents)
        self.charges[idempotency_key] = charge
        return charge

    async def refund(self, charge_id: str) -> None:
        self.refunded.add(charge_id)

    @property
    def captures(self) -> int:
        """How many charges actually took money (for tests and the curious)."""
        return sum(1 for charge in self.charges.values() if charge.captured)


def get_provider(request: Request) -> SimulatedProvider:
    provider: SimulatedProvider = request.app.state.provider
    return provider


# The payment processor the app started with (main.on_startup), for a handler.
Provider = Annotated[SimulatedProvider, Depends(get_provider)]
