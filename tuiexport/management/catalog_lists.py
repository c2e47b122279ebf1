"""Small read-only lists of the catalog's reference data, for pickers in the front ends."""

from __future__ import annotations

from tuiexport.models import Manufacturer, ProductType, Supplier, tuples


def list_suppliers() -> list[tuple[int, str, bool]]:
    """``(id, name, partner)`` of every supplier, by name."""
    return list(
        tuples(
            Supplier.select(Supplier.id, Supplier.name, Supplier.partner).order_by(Supplier.name)
        )
    )


def list_manufacturers() -> list[tuple[int, str]]:
    """``(id, name)`` of every manufacturer, by name."""
    return list(
        tuples(Manufacturer.select(Manufacturer.id, Manufacturer.name).order_by(Manufacturer.name))
    )


def list_product_types() -> list[tuple[int, str, str]]:
    """``(id, name, group code)`` of every product type, by name."""
    return list(
        tuples(
            ProductType.select(ProductType.id, ProductType.name, ProductType.group_code).order_by(
                ProductType.name
            )
        )
    )
