"""Integers in request bodies as JSON means them: ``JsonInt``.

JSON has one number type, so 5 and 5.0 are the same number, and JSON Schema's "integer" (what
the OpenAPI documents say) accepts both. pydantic's strict int refuses 5.0; its lax int would
also take "5" and true, which are not numbers at all. JsonInt takes an integral JSON number (5 or
5.0, as 5) and refuses strings, booleans, fractions, NaN and infinities with a 422.

    quantity: JsonInt = Field(ge=1, le=1000)
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field


def _integral_float_as_int(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value  # anything else meets the strict int check as it is


JsonInt = Annotated[int, BeforeValidator(_integral_float_as_int), Field(strict=True)]
