"""The catalogue: any signed-in user reads it; only warehouse staff and admins set stock."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from relayshop_platform.db import DbSession
from relayshop_platform.errors import NotFound
from relayshop_platform.roles import Role
from relayshop_platform.security import CurrentUser, require_roles, require_scope
from sqlmodel import col, select

from .. import stock
from ..models import Product, ProductOut, StockUpdate

router = APIRouter(prefix="/api/inventory/products", tags=["products"])
SkuPath = Annotated[str, Path(min_length=1, max_length=64)]


@router.get(
    "", response_model=list[ProductOut], dependencies=[Depends(require_scope("inventory:read"))]
)
async def list_products(user: CurrentUser, session: DbSession) -> list[Product]:
    """Every product with its available stock. Any role (customer, support, warehouse, admin)."""
    return list((await session.exec(select(Product).order_by(col(Product.sku)))).all())


@router.get(
    "/{sku}", response_model=ProductOut, dependencies=[Depends(require_scope("inventory:read"))]
)
async def get_product(sku: SkuPath, user: CurrentUser, session: DbSession) -> Product:
    """One product; 404 if the sku is unknown. Any role."""
    product = await session.get(Product, sku)
    if product is None:
        raise NotFound(f"No product with sku '{sku}'.")
    return product


@router.put(
    "/{sku}/stock",
    response_model=ProductOut,
    dependencies=[Depends(require_roles(Role.WAREHOUSE, Role.ADMIN, scope="inventory:write"))],
)
async def set_stock(sku: SkuPath, body: StockUpdate, session: DbSession) -> Product:
    """Set the available stock (an absolute count, not a delta). Warehouse and admin only."""
    return await stock.set_stock(session, sku, body.stock)
