"""Response schemas of the gateway's own routes (the proxied ones are the services' schemas)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class OrderSummary(BaseModel):
    """One order with its payment and products, gathered from three services in one call."""

    model_config = ConfigDict(extra="forbid")

    order: dict[str, Any]
    payment: dict[str, Any] | None  # None before payment, or when payments has no record
    products: list[dict[str, Any]]  # one per distinct sku of the order, in order of appearance
