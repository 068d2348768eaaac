"""JsonInt: an integral JSON number is an integer (5 and 5.0); a string, a boolean or a fraction
is not, and the schema still says "integer" with its bounds."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field, ValidationError
from relayshop_platform.jsontypes import JsonInt


class Line(BaseModel):
    quantity: JsonInt = Field(ge=1, le=1000)


@pytest.mark.parametrize("value", [5, 5.0])
def test_integral_numbers_are_integers(value: object) -> None:
    quantity = Line.model_validate({"quantity": value}).quantity
    assert quantity == 5 and type(quantity) is int


@pytest.mark.parametrize("value", ["5", True, 5.5, float("nan"), float("inf"), None, 1e300, 0])
def test_anything_else_is_refused(value: object) -> None:
    with pytest.raises(ValidationError):
        Line.model_validate({"quantity": value})


def test_schema_says_integer_with_its_bounds() -> None:
    schema = Line.model_json_schema()["properties"]["quantity"]
    assert schema == {"type": "integer", "minimum": 1, "maximum": 1000, "title": "Quantity"}
