"""Export definitions: validity with reasons, references, limits, share tokens."""

from __future__ import annotations

import re
import uuid

import pytest

from tests import tiny_catalog
from tuiexport import config, service
from tuiexport.errors import Conflict, NotFound, UserError
from tuiexport.models import ExportDefinition, Manufacturer
from tuiexport.selection import Criteria


@pytest.fixture
def catalog(empty_db):
    tiny_catalog.build()
    return empty_db


def test_new_definition_has_uuid_token_and_is_invalid_without_selection(catalog):
    d = service.create_definition("Feed")
    assert uuid.UUID(d.export_id).version == 4
    assert len(d.share_token) >= 22 and re.fullmatch(r"[A-Za-z0-9_-]+", d.share_token)
    assert not d.valid
    assert d.reasons == ["No product selection is assigned."]
    assert d.effective_limit == 200_000 and d.product_limit is None
    assert d.producer


def test_every_invalidity_reason_of_the_brief(catalog):
    s = service.create_selection(
        Criteria(suppliers="all", manufacturer_ids=[1], price_min=9, price_max=3)
    )
    d = service.create_definition("  ", selection_id=s.id, profile="bmecat12", output="csv")
    text = " ".join(d.reasons)
    assert "The name is empty." in d.reasons
    assert "minimum price 9 is above the maximum 3" in text
    assert "bmecat12 as CSV does not exist" in text
    # A manufacturer that disappears from the catalog makes the selection (and export) invalid.
    service.update_selection(s.id, criteria=Criteria(suppliers="all", manufacturer_ids=[1]))
    d = service.update_definition(d.export_id, name="Feed", output="xml")
    assert d.valid, d.reasons
    Manufacturer.delete().where(Manufacturer.id == 1).execute()
    d = service.get_definition(d.export_id)
    assert d.reasons == ["Selection: Unknown manufacturer 1 (deleted from the catalog?)."]
    listed = {v.export_id: v for v in service.list_definitions()}
    assert listed[d.export_id].reasons == d.reasons


def test_reference_by_id_or_unique_name(catalog):
    a = service.create_definition("Shop")
    assert service.get_definition("Shop").export_id == a.export_id
    assert service.get_definition(a.export_id.upper()).export_id == a.export_id
    # Names are unique now; a database from before may still hold two of one name.
    b = service.create_definition("Shop 2")
    ExportDefinition.update(name="Shop").where(ExportDefinition.export_id == b.export_id).execute()
    with pytest.raises(UserError, match="Several exports are named 'Shop'; use the export ID"):
        service.get_definition("Shop")
    with pytest.raises(NotFound, match="There is no export 'nope'"):
        service.get_definition("nope")


def test_limit_must_stay_under_the_contract(catalog, monkeypatch):
    with pytest.raises(UserError, match="above the contract limit of 200,000"):
        service.create_definition("Big", product_limit=300_000)
    with pytest.raises(UserError, match="at least 1"):
        service.create_definition("Zero", product_limit=0)
    monkeypatch.setenv("TUIEXPORT_CONTRACT_LIMIT", "1000")
    config.reset_settings()
    d = service.create_definition("Small", product_limit=500)
    assert d.effective_limit == 500
    assert service.create_definition("Default").effective_limit == 1000


def test_bad_values_are_refused_with_a_sentence(catalog):
    with pytest.raises(UserError, match="Unknown profile 'fancy'"):
        service.create_definition("x", profile="fancy")
    with pytest.raises(UserError, match="Unknown language 'xx'"):
        service.create_definition("x", language="xx")
    with pytest.raises(NotFound, match="There is no product selection 99"):
        service.create_definition("x", selection_id=99)
    d = service.create_definition("x")
    with pytest.raises(UserError, match="Cannot change export_id"):
        service.update_definition(d.export_id, export_id="abc")


def test_rotating_the_token_changes_the_share_url(catalog):
    d = service.create_definition("Feed")
    old = service.share_url(d.export_id)
    assert (
        old == f"http://127.0.0.1:8421/api/v1/exports/{d.export_id}/download?token={d.share_token}"
    )
    new = service.rotate_share_token(d.export_id)
    assert new.share_token != d.share_token
    assert service.share_url(d.export_id, "https://feeds.example.com/") == (
        f"https://feeds.example.com/api/v1/exports/{d.export_id}/download?token={new.share_token}"
    )


def test_selection_shared_by_definitions_and_guarded_on_delete(catalog):
    s = service.create_selection(Criteria(suppliers="all"), name="Everything")
    a = service.create_definition("A", selection_id=s.id)
    service.create_definition("B", selection_id=s.id)
    assert service.get_selection(s.id).used_by == ["A", "B"]
    service.update_selection(s.id, criteria=Criteria(suppliers="all", only_new=True))
    assert service.get_definition(a.export_id).selection_name == "Everything"
    with pytest.raises(Conflict, match="used by 2 export"):
        service.delete_selection(s.id)
    service.delete_selection(s.id, force=True)
    assert service.get_definition(a.export_id).reasons == ["No product selection is assigned."]


def test_sorting_and_filtering(catalog):
    for name, profile, output in (
        ("b feed", "standard", "json"),
        ("A feed", "developer", "xml"),
        ("c", "bmecat12", "xml"),
    ):
        service.create_definition(name, profile=profile, output=output)
    assert [d.name for d in service.list_definitions()] == ["A feed", "b feed", "c"]
    assert [d.name for d in service.list_definitions(sort="format")] == ["c", "A feed", "b feed"]
    assert [d.name for d in service.list_definitions(filter_text="FEED")] == ["A feed", "b feed"]
    assert [d.name for d in service.list_definitions(filter_text="bmecat")] == ["c"]


def test_names_are_unique_trimmed_and_case_insensitive(catalog):
    service.create_definition("Shop feed")
    with pytest.raises(UserError, match="An export named 'Shop feed' exists already"):
        service.create_definition("  shop   FEED ")
    other = service.create_definition("Other")
    with pytest.raises(UserError, match="exists already"):
        service.update_definition(other.export_id, name="SHOP FEED")
    # Its own name (in another case) is no conflict.
    assert service.update_definition(other.export_id, name="OTHER").name == "OTHER"
    # Without a name: "New export", then numbered while that is taken.
    assert service.create_definition().name == "New export"
    assert service.create_definition().name == "New export 2"
    assert service.create_definition().name == "New export 3"


def test_duplicate_name_on_the_cli_is_one_sentence_and_exit_2(catalog, capsys):
    from tuiexport.cli import main

    service.create_definition("Shop feed")
    db = service.database_location()
    code = main(["--db", db, "exports", "create", "--name", "shop feed"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == "tuiexport: An export named 'Shop feed' exists already; choose another name.\n"


def test_options_are_typed_and_checked_on_save(catalog):
    d = service.create_definition("Feed", options={"csv_variant": "excel"})
    assert d.options == {"csv_variant": "excel"}
    # A typo or a tuning knob is refused with a sentence instead of failing the run later.
    with pytest.raises(UserError, match=r"export options are invalid: .*unknown field `workers`"):
        service.update_definition(d.export_id, options={"workers": "two"})
    with pytest.raises(UserError, match=r"Invalid enum value 'exel'"):
        service.update_definition(d.export_id, options={"csv_variant": "exel"})
    assert service.get_definition("Feed").options == {"csv_variant": "excel"}
    # The default is not stored: "standard" and no option are the same definition.
    assert service.update_definition(d.export_id, options={"csv_variant": "standard"}).options == {}
