"""Example selections and definitions for a fresh installation, so nothing is empty on first start."""

from __future__ import annotations

from tuiexport.management import definitions, selections
from tuiexport.models import Manufacturer, tuples
from tuiexport.selection import Criteria


def create_examples() -> None:
    partners = selections.create_selection(
        Criteria(suppliers="partners", only_in_stock=True, only_with_price=True)
    )
    everything = selections.create_selection(Criteria(suppliers="all"), name="Whole catalog")
    brands = [
        m
        for (m,) in tuples(Manufacturer.select(Manufacturer.id).order_by(Manufacturer.id).limit(3))
    ]
    branded = selections.create_selection(
        Criteria(
            suppliers="all", manufacturer_ids=brands, only_new=True, only_exportable_images=True
        )
    )
    definitions.create_definition(
        "Shop feed", selection_id=partners.id, profile="standard", output="csv"
    )
    definitions.create_definition(
        "Price and stock update", selection_id=partners.id, profile="standardUpdate", output="json"
    )
    definitions.create_definition(
        "Marketplace BMEcat",
        selection_id=branded.id,
        profile="bmecat12",
        output="xml",
        language="en",
    )
    definitions.create_definition(
        "Developer dump", selection_id=everything.id, profile="developer", output="jsonl"
    )
    definitions.create_definition("Draft without selection", profile="standard", output="xml")
