"""Delta feeds and run diffs (issue 12): fingerprint manifests, deltas by cursor, run diffs.

Every delta here is checked the way a consumer would use it: applied to the older full file,
it must give the newer full file (per format, on the serial path and on the worker processes).
Real SQLite files, real HTTP on loopback, the real CLI entry point.
"""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests import tiny_catalog
from tests.server_helpers import served_fixture  # noqa: F401 - the fixture
from tuiexport import cli, config, service
from tuiexport.db import database
from tuiexport.errors import Gone, UserError
from tuiexport.exporters import fingerprints
from tuiexport.management import deltas
from tuiexport.models import Manufacturer, Product, ProductText, SupplierItem
from tuiexport.schema import bump_catalog_version
from tuiexport.selection import Criteria

FORMATS = ["standard/csv", "standard/json", "standard/jsonl", "standard/xml", "developer/jsonl"]
#: Workers for a tiny catalog: every chunk of 4 products on a worker process.
WORKERS = '{"parallel_min": 1, "parallel_chunk": 4}'


@pytest.fixture
def catalog(empty_db):
    tiny_catalog.build()
    return service.create_selection(Criteria(suppliers="all"), name="All")


def define(selection, fmt: str, **kw) -> str:
    profile, output = fmt.split("/")
    d = service.create_definition(
        f"{fmt} {len(service.list_definitions())}",
        selection_id=selection.id,
        profile=profile,
        output=output,
        **kw,
    )
    return d.export_id


def change_catalog() -> None:
    """An offer change, a text change, a manufacturer rename, a removal and an addition, as
    an import would make them (the catalog version moves on)."""
    SupplierItem.update(price=999.0).where(SupplierItem.product == 1003).execute()
    ProductText.update(name="Neuer Name").where(
        ProductText.product == 1005, ProductText.lang == "de"
    ).execute()
    Manufacturer.update(name="HP Inc.").where(Manufacturer.id == 2).execute()  # 1001, 1004, …
    Product.delete().where(Product.puid == 1009).execute()
    Product.create(puid=1021, ean="4000000000021", manufacturer=1, product_type=1)
    ProductText.create(product=1021, lang="de", name="Neu 21")
    SupplierItem.create(product=1021, supplier=1, supplier_sku="A-21", price=21.0, stock=1)
    bump_catalog_version()


# --- reading the files as a consumer does ------------------------------------------------------


def products(path: Path, fmt: str) -> tuple[dict[int, object], list[int]]:
    """(puid -> the product's content in the file, removed puids)."""
    output = fmt.split("/")[1]
    if output == "json":
        doc = json.loads(path.read_bytes())
        return {p["puid"]: p for p in doc["product"]}, doc.get("removed", [])
    if output == "jsonl":
        found, removed = {}, []
        for line in path.read_bytes().splitlines():
            record = json.loads(line)
            record = record.get("product", record) if "product" in record else record
            if "puid" not in record:
                continue  # a reference entity (developer profile)
            if record.get("removed") is True:
                removed.append(record["puid"])
            else:
                found[record["puid"]] = record
        return found, removed
    if output == "xml":
        root = ElementTree.fromstring(path.read_bytes())
        found = {int(p.findtext("puid")): ElementTree.tostring(p) for p in root.iter("product")}
        return found, [int(r.findtext("puid")) for r in root.iter("removed")]
    with zipfile.ZipFile(path) as zf:
        members = {
            name: list(csv.reader(io.TextIOWrapper(zf.open(name), encoding="utf-8", newline="")))
            for name in zf.namelist()
            if name.endswith(".csv")
        }
    found: dict[int, object] = {}
    for row in members["product.csv"][1:]:
        found[int(row[0])] = [row, []]
    for row in members["supplierItem.csv"][1:]:
        found[int(row[0])][1].append(row)  # type: ignore[index]
    removed = [int(r[0]) for r in members.get("removed.csv", [[]])[1:]]
    return found, removed


def apply(full: dict[int, object], delta: dict[int, object], removed: list[int]):
    result = {k: v for k, v in full.items() if k not in removed}
    result.update(delta)
    return dict(sorted(result.items()))


# --- 1. manifests --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [*FORMATS, "standard/xlsx", "bmecat12/xml"])
def test_every_full_run_keeps_a_manifest_of_its_products(catalog, fmt):
    export_id = define(catalog, fmt)
    run = service.run_export(export_id)
    path = deltas.manifest_path(export_id, run.log_id)
    if fmt in ("standard/xlsx", "bmecat12/xml"):
        assert not path.exists()
        assert "no deltas" in (service.delta_refusal(*fmt.split("/")) or "")
        return
    entries = list(fingerprints.read(path))
    assert [e[0] for e in entries] == sorted(products(Path(run.artifact_path), fmt)[0])
    assert len({e[1] for e in entries}) == len(entries)  # every product its own content
    assert not list(path.parent.glob("*.part"))


def test_manifests_follow_the_retention_of_the_artifacts(catalog, monkeypatch):
    monkeypatch.setenv("TUIEXPORT_KEEP_ARTIFACTS", "2")
    config.reset_settings()
    export_id = define(catalog, "standard/json")
    first = service.run_export(export_id)
    folder = config.artifacts_dir() / export_id
    left = folder / "DEADRUN001.new.0.part"  # what a run killed while writing leaves
    left.write_bytes(b"x")
    for _ in range(2):
        bump_catalog_version()
        last = service.run_export(export_id)
    assert not left.exists()
    assert not deltas.manifest_path(export_id, first.log_id).exists()
    assert deltas.manifest_path(export_id, last.log_id).exists()
    assert len(list(folder.glob("*.fingerprints"))) == 2
    with pytest.raises(Gone, match="fetch the full feed"):
        service.run_delta(export_id, first.log_id)


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_serial_path_and_the_workers_note_the_same_fingerprints(catalog, fmt, monkeypatch):
    # A catalog that grows past Tuning.parallel_min moves to the workers: its next delta must
    # not show every product as changed.
    export_id = define(catalog, fmt)
    serial = service.run_export(export_id)
    monkeypatch.setenv("TUIEXPORT_TUNING", WORKERS)
    bump_catalog_version()
    workers = service.run_export(export_id)
    entries = list(fingerprints.read(deltas.manifest_path(export_id, serial.log_id)))
    assert len(entries) == 20
    assert list(fingerprints.read(deltas.manifest_path(export_id, workers.log_id))) == entries
    assert workers.supplier_shares == serial.supplier_shares
    # The generic path (records built in Python, as on PostgreSQL) notes the same entries,
    # the offers' figures included (a run diff's "changed price or stock").
    monkeypatch.setenv("TUIEXPORT_TUNING", '{"generic_path": true}')
    bump_catalog_version()
    generic = service.run_export(export_id)
    noted = list(fingerprints.read(deltas.manifest_path(export_id, generic.log_id)))
    # XML hashes differ: the fast path hashes SQLite's markup before it becomes XML.
    same = (lambda e: e) if fmt != "standard/xml" else (lambda e: (e[0], e[2]))
    assert list(map(same, noted)) == list(map(same, entries))
    assert any(figures for _, _, figures in entries)


def test_a_product_hashes_the_same_however_its_lines_fall_into_chunks():
    # CSV: the serial path reads lines, and a product's lines may go on in the next chunk.
    lines = [(7, b"7,a"), (7, b"7,b"), (8, b"8,c"), (9, b"9,d"), (9, b"9,e"), (9, b"9,f")]

    def noted(cuts: list[int]) -> bytes:
        noter = fingerprints.Noter(1, b"\r\n", spans_chunks=True)
        out = b""
        for a, b in zip([0, *cuts], [*cuts, len(lines)], strict=True):
            chunk = lines[a:b]
            data = b"\r\n".join(line for _, line in chunk) + b"\r\n"
            out += noter.note(data, [p for p, _ in chunk], [len(line) for _, line in chunk])
        return out + noter.close()

    whole = noted([])
    assert [e[0] for e in fingerprints.ENTRY.iter_unpack(whole)] == [7, 8, 9]
    for cuts in ([1], [2], [3], [4], [5], [1, 4], [1, 2, 3, 4, 5]):
        assert noted(cuts) == whole, cuts
    # The worker's handler (one chunk, all of a product's lines in it) notes the same.
    data = b"\r\n".join(line for _, line in lines) + b"\r\n"
    puids = ",".join(str(p) for p, _ in lines)
    lengths = ",".join(str(len(line)) for _, line in lines)
    assert fingerprints.noted([(data, 1, b"\r\n", puids, lengths, None, None)]) == (
        (data,),
        whole,
    )
    # With an entry for every product of the chunk: one without lines gets a zero entry.
    _, every = fingerprints.noted([(data, 1, b"\r\n", puids, lengths, None, "[6,7,8,9,10]")])
    entries = list(fingerprints.ENTRY.iter_unpack(every))
    assert [e[0] for e in entries] == [6, 7, 8, 9, 10]
    assert entries[0][1:] == entries[4][1:] == (0, 0)
    assert b"".join(fingerprints.ENTRY.pack(*e) for e in entries[1:4]) == whole


def test_members_summed_in_blocks_or_merged_give_the_same_manifest(tmp_path):
    # The workers give a child member an entry for every product (zero for one without
    # lines): its part is added up in blocks; the serial path's (entries only for products
    # with lines) is merged. Both manifests are the same.
    main = [(p, p * 7919, p % 5) for p in range(1, 100_001)]
    child = {p: ((p * 104729) << 20 & fingerprints.MASK, p % 3) for p in range(1, 100_001, 3)}

    def manifest(name: str, aligned: bool) -> bytes:
        builder = fingerprints.Builder(tmp_path / name)
        for puid, h, f in main:
            builder.feed(0, fingerprints.ENTRY.pack(puid, h, f))
        for puid, *_ in main:
            if puid in child:
                builder.feed(1, fingerprints.ENTRY.pack(puid, *child[puid]))
            elif aligned:
                builder.feed(1, fingerprints.ENTRY.pack(puid, 0, 0))
        assert builder.finish() == len(main)
        return (tmp_path / name).read_bytes()

    blocks, merged = manifest("a", aligned=True), manifest("b", aligned=False)
    assert blocks == merged
    entries = list(fingerprints.read(tmp_path / "a"))
    assert entries[0] == (1, (7919 + child[1][0]) & fingerprints.MASK, 1 + child[1][1])
    assert entries[1] == main[1]


def test_manifests_of_an_older_version_are_refused_with_a_sentence(catalog):
    export_id = define(catalog, "standard/jsonl")
    old = service.run_export(export_id)
    path = deltas.manifest_path(export_id, old.log_id)
    # What tuiexport wrote before this version (other hashes, the same 24 bytes an entry).
    path.write_bytes(fingerprints.OLD_MAGICS[0] + path.read_bytes()[len(fingerprints.MAGIC) :])
    bump_catalog_version()
    new = service.run_export(export_id)
    with pytest.raises(Gone, match="fetch the full feed"):
        service.run_delta(export_id, old.log_id)
    with pytest.raises(UserError, match="predates this version's manifests"):
        service.run_diff(old.log_id, new.log_id)


# --- 2. deltas ------------------------------------------------------------------------------


@pytest.mark.parametrize("tuning", ["", WORKERS], ids=["serial", "workers"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_delta_applied_to_the_older_file_gives_the_newer_one(catalog, fmt, tuning, monkeypatch):
    monkeypatch.setenv("TUIEXPORT_TUNING", tuning)
    export_id = define(catalog, fmt)
    old = service.run_export(export_id)
    change_catalog()
    delta = service.run_delta(export_id, old.log_id)
    new = service.get_run(delta.delta_base)
    assert new.log_id != old.log_id and not new.is_delta  # a full run was made first
    assert (delta.trigger, delta.delta_since, delta.status) == ("cli", old.log_id, "success")

    full_old, _ = products(Path(old.artifact_path), fmt)
    full_new, _ = products(Path(new.artifact_path), fmt)
    got, removed = products(Path(delta.artifact_path), fmt)
    assert removed == [1009]
    assert 1021 in got and 1003 in got  # added; an offer changed
    if fmt.startswith("standard"):
        assert 1005 in got  # its name in the export's language
        assert {1001, 1004, 1007}.issubset(got)  # their manufacturer was renamed
    assert 1002 not in got  # unchanged
    assert apply(full_old, got, removed) == full_new
    if fmt.endswith("csv"):  # the ZIP names its run: a cursor for the next delta
        with zipfile.ZipFile(delta.artifact_path) as zf:
            assert zf.comment == f"tuiexport logId={delta.log_id}".encode()
    assert (delta.added_count, delta.removed_count) == (1, 1)
    assert delta.changed_count == len(got) - 1
    assert delta.product_count == len(got)


def test_a_change_the_format_does_not_show_is_no_change(catalog):
    export_id = define(catalog, "standardUpdate/json")  # prices and stock only
    old = service.run_export(export_id)
    ProductText.update(name="Anders").where(ProductText.product == 1005).execute()
    ProductText.update(name="Other").where(ProductText.lang == "en").execute()
    bump_catalog_version()
    delta = service.run_delta(export_id, old.log_id)
    assert (delta.added_count, delta.changed_count, delta.removed_count) == (0, 0, 0)
    doc = json.loads(Path(delta.artifact_path).read_bytes())
    assert doc["product"] == [] and doc["removed"] == []
    assert doc["meta"]["since"] == old.log_id and doc["meta"]["logId"] == delta.log_id


def test_a_text_in_another_language_is_no_change(catalog):
    export_id = define(catalog, "standard/jsonl", language="de")
    old = service.run_export(export_id)
    ProductText.update(name="Other").where(ProductText.lang == "en").execute()
    bump_catalog_version()
    delta = service.run_delta(export_id, old.log_id)
    assert delta.changed_count == 0 and Path(delta.artifact_path).read_bytes() == b""


def test_a_product_changed_during_a_run_is_in_the_next_delta(catalog):
    export_id = define(catalog, "standard/json")
    first = service.run_export(export_id)
    changed = []

    def progress(written: int, total: int) -> None:
        # The run has read its products: this change lands after 1002 was written, before
        # the run ends (a watermark taken at its end would place it before and miss it).
        if written and not changed:
            SupplierItem.update(stock=42).where(SupplierItem.product == 1002).execute()
            bump_catalog_version()
            changed.append(written)

    during = service.run_export(export_id, progress=progress)
    assert changed
    written, _ = products(Path(during.artifact_path), "standard/json")
    assert written[1002]["supplierItem"][0]["stock"] == 2  # the run wrote the old stock
    # The consumer fetched the run during which 1002 changed; its next delta has 1002.
    delta = service.run_delta(export_id, during.log_id)
    got, _ = products(Path(delta.artifact_path), "standard/json")
    assert list(got) == [1002] and got[1002]["supplierItem"][0]["stock"] == 42
    # And from the run before: 1002 too, with its new stock.
    assert (
        1002
        in products(
            Path(service.run_delta(export_id, first.log_id).artifact_path), "standard/json"
        )[0]
    )


def test_a_delta_is_a_cursor_too(catalog):
    export_id = define(catalog, "standard/json")
    old = service.run_export(export_id)
    change_catalog()
    first = service.run_delta(export_id, old.log_id)
    SupplierItem.update(stock=5).where(SupplierItem.product == 1010).execute()
    bump_catalog_version()
    second = service.run_delta(export_id, first.log_id)
    got, removed = products(Path(second.artifact_path), "standard/json")
    assert list(got) == [1010] and removed == []
    # Nothing changed since: an empty delta that still names the run it brings you to.
    third = service.run_delta(export_id, second.log_id)
    assert (third.product_count, third.delta_base) == (0, second.delta_base)


def test_bad_cursors_are_refused_with_a_sentence(catalog):
    json_id = define(catalog, "standard/json")
    csv_id = define(catalog, "standard/csv")
    bmecat_id = define(catalog, "bmecat12/xml")
    run = service.run_export(json_id)
    with pytest.raises(Gone, match="fetch the full feed"):
        service.run_delta(json_id, "NOSUCHRUN1")
    with pytest.raises(Gone):
        service.run_delta(csv_id, run.log_id)  # a run of another export
    with pytest.raises(UserError, match="T_UPDATE_PRODUCTS"):
        service.run_delta(bmecat_id, run.log_id)


def test_cli_run_since_writes_the_delta_and_names_the_next_cursor(catalog, tmp_path, capsys):
    export_id = define(catalog, "standard/jsonl")
    old = service.run_export(export_id)
    change_catalog()
    db = str(database.database)
    target = tmp_path / "delta.jsonl"
    code = cli.main(["--db", db, "--run", export_id, "--since", old.log_id, "-o", str(target)])
    out, err = capsys.readouterr()
    assert code == 0 and out.strip() == str(target)
    got, removed = products(target, "standard/jsonl")
    assert removed == [1009] and 1021 in got
    delta = service.list_history(limit=1)[0]
    assert delta.is_delta and f"next time: --since {delta.log_id}" in err
    assert cli.main(["--db", db, "--run", export_id, "--since", "NOSUCHRUN1"]) == 4
    assert "fetch the full feed" in capsys.readouterr().err
    assert cli.main(["--db", db, "--since", old.log_id]) == 2
    assert "--since only works with --run" in capsys.readouterr().err


# --- the share server ------------------------------------------------------------------------


def test_share_url_answers_a_delta_by_cursor(served):
    share = served.share("standard-json")
    status, head, body = served.request("GET", share)
    assert status == 200
    cursor = head["x-log-id"]  # the served download's own log ID
    change_catalog()
    status, head, body = served.request("GET", f"{share}&since={cursor}")
    assert status == 200 and head["content-type"] == "application/json"
    assert head["content-disposition"].endswith('_delta.json"')  # never taken for the feed
    assert "_delta" not in served.request("GET", share)[1]["content-disposition"]
    doc = json.loads(body)
    assert doc["removed"] == [1009] and 1021 in [p["puid"] for p in doc["product"]]
    assert doc["meta"]["logId"] == head["x-log-id"] and doc["meta"]["since"] == cursor
    delta = service.get_run(head["x-log-id"])
    assert (delta.trigger, delta.delta_since, delta.removed_count) == ("api", cursor, 1)
    status, _, shown = served.api("GET", f"/api/v1/runs/{delta.log_id}")
    assert status == 200 and shown["delta"]["since"] == cursor
    assert (shown["delta"]["added"], shown["delta"]["removed"]) == (1, 1)
    # The delta's log ID is the next cursor: nothing changed since.
    status, head, body = served.request("GET", f"{share}&since={head['x-log-id']}")
    assert status == 200 and json.loads(body)["product"] == []


def test_share_url_refuses_unknown_cursors_and_bmecat_deltas(served):
    share = served.share("standard-jsonl")
    status, head, body = served.request("GET", f"{share}&since=NOSUCHRUN1")
    assert status == 410 and head["content-type"] == "application/problem+json"
    assert "fetch the full feed" in json.loads(body)["detail"]
    status, head, body = served.request("GET", f"{share}&since=")
    assert status == 400
    status, _, body = served.request("GET", served.share("bmecat12-xml") + "&since=NOSUCHRUN1")
    assert status == 409 and "T_UPDATE_PRODUCTS" in json.loads(body)["detail"]


# --- 3. run diffs ----------------------------------------------------------------------------


def test_run_diff_counts_what_changed_and_the_supplier_shares(catalog, capsys):
    export_id = define(catalog, "standard/csv")
    old = service.run_export(export_id)
    change_catalog()
    new = service.run_export(export_id)
    diff = service.run_diff(old.log_id, new.log_id)
    assert (diff.added, diff.removed) == (1, 1)
    assert diff.changed == 9  # 1003 (offer), 1005 (text), 7 products of the renamed manufacturer
    assert diff.changed_figures == 1  # only 1003's offer
    assert diff.shares_before["Alpha Distribution"] == 19
    assert diff.shares_after["Alpha Distribution"] == 19  # 1009 gone, 1021 new
    db = str(database.database)
    assert cli.main(["--db", db, "history", "diff", old.log_id, new.log_id]) == 0
    out = capsys.readouterr().out
    assert "changed          9" in out and "with a changed price or stock: 1" in out
    assert cli.main(["--db", db, "history", "diff", old.log_id, "--json"]) == 2


def test_a_held_run_shows_its_diff_with_the_published_one(catalog):
    export_id = define(catalog, "standard/json")
    published = service.run_export(export_id)
    Product.delete().where(Product.puid > 1008).execute()
    bump_catalog_version()
    held = service.run_export(export_id)
    assert held.status == "held"
    diff = service.run_diff_with_previous(held.log_id)
    assert diff is not None and (diff.old, diff.new) == (published.log_id, held.log_id)
    assert diff.removed == 12 and diff.added == 0
    assert any("Alpha Distribution: 19 → 8 (-11)" in line for line in diff.lines())
    assert os.path.exists(deltas.manifest_path(export_id, held.log_id))


def test_tui_run_details_of_a_held_run_show_its_changes(catalog):
    import asyncio

    from rich.console import Console
    from textual.widgets import Static

    from tuiexport.app import ExportApp
    from tuiexport.screens.run_details import RunDetailsScreen

    export_id = define(catalog, "standard/json")
    published = service.run_export(export_id, trigger="tui")
    Product.delete().where(Product.puid > 1008).execute()
    bump_catalog_version()
    held = service.run_export(export_id, trigger="tui")
    assert held.status == "held"

    async def look() -> str:
        app = ExportApp(server_url="http://127.0.0.1:9")
        async with app.run_test(size=(140, 50)) as pilot:
            await pilot.pause(0.2)
            app.push_screen(RunDetailsScreen(service.get_run(held.log_id)))
            for _ in range(50):  # the diff is read by a worker
                await pilot.pause(0.05)
                changes = app.screen.query_one("#run-changes", Static)
                if changes.display:
                    break
            console = Console(width=140, record=True, file=io.StringIO())
            console.print(changes.content)
            return console.export_text()

    text = asyncio.run(look())
    assert "Changes against the published run (approving publishes these)" in text
    assert f"Run {published.log_id} (20 products) → run {held.log_id} (8 products)" in text
    assert "removed         12" in text


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["standard/csv", "standard/json"])
def test_deltas_on_postgresql(fmt):
    """The generic path (records built in Python) notes the same fingerprints."""
    from tests.pg_cluster import running_cluster
    from tuiexport import db as dbmod
    from tuiexport import setup
    from tuiexport.catalog.demo import generate_demo

    with running_cluster() as cluster:
        try:
            setup.prepare_database(cluster.url, load_sample=False)
            generate_demo(60, seed=3)
            selection = service.create_selection(Criteria(suppliers="all"), name="All")
            export_id = define(selection, fmt)
            old = service.run_export(export_id)
            first = [p.puid for p in Product.select(Product.puid).order_by(Product.puid)]
            offer, text, gone, same = first[:4]
            SupplierItem.update(price=SupplierItem.price + 1).where(
                SupplierItem.product == offer
            ).execute()
            ProductText.update(name="Neu").where(
                ProductText.product == text, ProductText.lang == "de"
            ).execute()
            Product.delete().where(Product.puid == gone).execute()
            bump_catalog_version()
            delta = service.run_delta(export_id, old.log_id)
            new = service.get_run(delta.delta_base)
            got, removed = products(Path(delta.artifact_path), fmt)
            full_old, _ = products(Path(old.artifact_path), fmt)
            assert removed == [gone] and {offer, text} <= set(got) and same not in got
            assert apply(full_old, got, removed) == products(Path(new.artifact_path), fmt)[0]
            diff = service.run_diff(old.log_id, new.log_id)
            assert (diff.removed, diff.changed_figures) == (1, 1)  # only the offer's price
        finally:
            dbmod.close_database()
