"""Every artifact is read back before it is published (issue 11 §1): good files pass, broken
ones fail the run with their first problems, and the previous file keeps serving.

A broken file is made for real: ``validate.before_validate`` (a test seam in the product) gets
the part file after the writer finished and before it is validated, and breaks it the way a
misbehaving writer would. Nothing of the database is mocked."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import pytest

from tests import tiny_catalog
from tests.server_helpers import served_fixture  # noqa: F401  (fixture)
from tuiexport import service
from tuiexport.exporters import csv_zip, registry, validate
from tuiexport.exporters.base import ExportOptions
from tuiexport.selection import Criteria

ALL_PAIRS = registry.valid_pairs()


@pytest.fixture
def catalog(empty_db):
    tiny_catalog.build()
    return service.create_selection(Criteria(suppliers="all"), name="All")


def define(catalog, profile: str, output: str, **options):
    d = service.create_definition(
        f"{profile}-{output}", selection_id=catalog.id, profile=profile, output=output
    )
    if options:
        service.update_definition(d.export_id, options=options)
    return d


def breaking(monkeypatch, change):
    """Break the next part files with ``change(bytes) -> bytes``."""

    def hook(path: Path) -> None:
        path.write_bytes(change(path.read_bytes()))

    monkeypatch.setattr(validate, "before_validate", hook)


def failed_with(run, *patterns: str) -> None:
    assert run.status == "failed", run.messages
    assert run.messages[-1].startswith("The file failed validation and was not published (")
    assert run.messages[-1].endswith("); share URLs keep serving the previous file.")
    assert 2 <= len(run.messages) <= 1 + validate.MAX_PROBLEMS
    text = "\n".join(run.messages[:-1])
    for pattern in patterns:
        assert re.search(pattern, text), (pattern, run.messages)
    assert not run.artifact_kept and not Path(run.artifact_path).exists()
    assert not list(Path(run.artifact_path).parent.glob(".*.part")), "no part file may remain"


@pytest.mark.parametrize(("profile", "output"), ALL_PAIRS)
def test_every_output_validates_its_own_files(catalog, profile, output):
    run = service.run_export(define(catalog, profile, output).export_id)
    assert run.status in ("success", "warning"), run.messages
    check = registry.get_validator(profile, output)
    assert check is not None
    path = Path(run.artifact_path)
    assert check(path, profile, run.product_count, ExportOptions()) == []
    # The same file claimed with one product more is a count mismatch.
    (problem,) = check(path, profile, run.product_count + 1, ExportOptions())
    assert f"but the run wrote {run.product_count + 1:,}" in problem


def test_the_excel_csv_variant_validates(catalog):
    run = service.run_export(define(catalog, "standard", "csv", csv_variant="excel").export_id)
    assert run.status == "success", run.messages


def test_a_truncated_json_fails_with_its_line(catalog, monkeypatch):
    d = define(catalog, "developer", "json")
    breaking(monkeypatch, lambda data: data[: len(data) * 2 // 3])
    run = service.run_export(d.export_id)
    failed_with(run, r"^line \d+")


def test_a_json_record_that_does_not_parse(catalog, monkeypatch):
    d = define(catalog, "standard", "json")
    breaking(monkeypatch, lambda data: data.replace(b'"puid":1003,', b'"puid":1003,,', 1))
    failed_with(service.run_export(d.export_id), r'line \d+, in "product": expected a key')


def test_json_lines_bad_lines_are_each_reported_up_to_five(catalog, monkeypatch):
    d = define(catalog, "standard", "jsonl")

    def spoil(data: bytes) -> bytes:
        lines = data.split(b"\n")
        for i in range(1, 16, 2):  # eight broken lines
            lines[i] = lines[i][:-1]
        return b"\n".join(lines)

    breaking(monkeypatch, spoil)
    run = service.run_export(d.export_id)
    failed_with(run, r"line 2: ", r"line 4: ")
    assert len(run.messages) == 1 + validate.MAX_PROBLEMS


@pytest.mark.parametrize("profile", ["standard", "developer"])  # plain, and wrapped lines
def test_json_lines_read_in_blocks_that_cut_lines_and_characters(catalog, monkeypatch, profile):
    """Blocks of 37 bytes cut lines and multi-byte characters: the file still validates, a bad
    line keeps its number, a bad UTF-8 byte is named as such."""
    run = service.run_export(define(catalog, profile, "jsonl").export_id)
    path = Path(run.artifact_path)
    data = path.read_bytes()
    assert re.search(rb"[\x80-\xff]", data), "the catalog has non-ASCII text"
    monkeypatch.setattr(validate, "BLOCK", 37)
    options = ExportOptions()
    assert validate.json_lines(path, profile, run.product_count, options) == []
    lines = data.split(b"\n")
    broken = path.with_name("broken.jsonl")
    broken.write_bytes(b"\n".join([*lines[:6], lines[6][:-1], *lines[7:]]))
    (problem,) = validate.json_lines(broken, profile, run.product_count, options)
    assert problem.startswith("line 7: ")
    broken.write_bytes(b"\n".join([*lines[:2], lines[2].replace(b'"', b'"\xff', 1), *lines[3:]]))
    assert validate.json_lines(broken, profile, run.product_count, options) == [
        "line 3: not UTF-8 (invalid start byte)"
    ]


def test_a_missing_product_is_a_count_mismatch(catalog, monkeypatch):
    d = define(catalog, "standard", "jsonl")
    breaking(monkeypatch, lambda data: data.split(b"\n", 1)[1])
    failed_with(service.run_export(d.export_id), r"holds 19 product lines, but the run wrote 20")


def test_a_csv_row_with_a_wrong_field_count(catalog, monkeypatch):
    d = define(catalog, "standard", "csv")

    def spoil(data: bytes) -> bytes:
        src = zipfile.ZipFile(io.BytesIO(data))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as dst:
            for name in src.namelist():
                member = src.read(name)
                if name == "supplierItem.csv":
                    head, first, rest = member.split(b"\r\n", 2)
                    member = b"\r\n".join([head, first + b",extra", rest])
                dst.writestr(name, member)
        return out.getvalue()

    breaking(monkeypatch, spoil)
    run = service.run_export(d.export_id)
    failed_with(run, r"supplierItem\.csv line 2: (\d+) fields, the header has \d+")


def test_a_csv_with_broken_quoting(catalog, monkeypatch):
    d = define(catalog, "standard", "csv")

    def spoil(data: bytes) -> bytes:
        src = zipfile.ZipFile(io.BytesIO(data))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as dst:
            for name in src.namelist():
                member = src.read(name)
                if name == "product.csv":
                    member = member.replace(b"\r\n1002,", b'\r\n1002,"x"y,', 1)
                dst.writestr(name, member)
        return out.getvalue()

    breaking(monkeypatch, spoil)
    failed_with(service.run_export(d.export_id), r"product\.csv line \d+: .,. expected after")


def test_a_truncated_zip(catalog, monkeypatch):
    d = define(catalog, "standard", "csv")
    breaking(monkeypatch, lambda data: data[: len(data) // 2])
    failed_with(service.run_export(d.export_id), r"not a readable ZIP")


def test_bmecat_element_out_of_order_is_a_schema_error_with_its_line(catalog, monkeypatch):
    d = define(catalog, "bmecat12", "xml")

    def spoil(data: bytes) -> bytes:
        # CATALOG_ID before LANGUAGE: the schema wants LANGUAGE first.
        return re.sub(
            rb"(<LANGUAGE>\w+</LANGUAGE>)(<CATALOG_ID>[^<]*</CATALOG_ID>)", rb"\2\1", data
        )

    breaking(monkeypatch, spoil)
    failed_with(
        service.run_export(d.export_id),
        r"^line 5, element CATALOG_ID: This element is not expected. Expected is \( LANGUAGE \)",
    )


def test_bmecat_value_of_the_wrong_type_is_a_schema_error(catalog, monkeypatch):
    d = define(catalog, "bmecat12", "xml")
    breaking(
        monkeypatch,
        lambda data: re.sub(rb"<PRICE_AMOUNT>[^<]*<", b"<PRICE_AMOUNT>cheap<", data, count=1),
    )
    failed_with(service.run_export(d.export_id), r"^line \d+, element PRICE_AMOUNT: .*'cheap'")


def test_xml_that_is_not_well_formed(catalog, monkeypatch):
    d = define(catalog, "standard", "xml")
    breaking(monkeypatch, lambda data: data.replace(b"</product>", b"</produkt>", 1))
    failed_with(service.run_export(d.export_id), r"^line \d+: .*mismatch")


def test_xml_with_a_product_fewer_is_a_count_mismatch(catalog, monkeypatch):
    d = define(catalog, "standard", "xml")
    breaking(
        monkeypatch,
        lambda data: re.sub(rb"<product>.*?</product>\n", b"", data, count=1, flags=re.S),
    )
    failed_with(
        service.run_export(d.export_id), r"holds 19 <product> elements, but the run wrote 20"
    )


def test_validation_off_publishes_unchecked(catalog, monkeypatch):
    d = define(catalog, "standard", "jsonl", validate=False)
    breaking(monkeypatch, lambda data: data.split(b"\n", 1)[1])
    run = service.run_export(d.export_id)
    assert run.status == "success" and Path(run.artifact_path).is_file()
    assert service.get_definition(d.export_id).options == {"validate": False}


def test_the_previous_file_keeps_serving_over_the_share_server(served, monkeypatch):
    name = "bmecat12-xml"
    export_id = served.exports[name].export_id
    status, head, good = served.request("GET", served.share(name))
    assert status == 200
    first = head["x-log-id"]

    breaking(
        monkeypatch,
        lambda data: re.sub(
            rb"<ARTICLE>(.*?)</ARTICLE>",
            rb"<ARTICLE>\1<EXTRA/></ARTICLE>",
            data,
            count=1,
            flags=re.S,
        ),
    )
    run = service.run_export(export_id, trigger="cli")
    assert run.status == "failed"
    assert run.messages[-1].startswith("The file failed validation and was not published")
    assert re.match(r"line \d+, element EXTRA: This element is not expected", run.messages[0])
    assert [r.status for r in service.list_history(export_id=export_id)][:2] == [
        "failed",
        "warning",
    ]

    status, head, again = served.request("GET", served.share(name))
    assert status == 200, again
    assert again == good, "the previous file is served, byte for byte"
    served_run = service.get_run(head["x-log-id"])
    assert served_run.sha256 == service.get_run(first).sha256
    assert "nothing was run again" in served_run.messages[0]


def test_the_cli_switches_validation_and_a_failed_run_exits_1(tmp_path, capsys, monkeypatch):
    from tuiexport import db as dbmod
    from tuiexport import setup
    from tuiexport.cli import main

    path = str(tmp_path / "cli.sqlite")
    setup.prepare_database(path, load_sample=False)
    tiny_catalog.build()
    dbmod.close_database()

    def cli(*args: str) -> tuple[int, str, str]:
        code = main(["--db", path, *args])
        out, err = capsys.readouterr()
        return code, out, err

    assert cli("selections", "create", "--criteria", '{"suppliers": "all"}')[0] == 0
    code, _, err = cli(
        "exports", "create", "--name", "Feed", "--selection", "1", "--output", "jsonl",
        "--no-validate",
    )  # fmt: skip
    assert code == 0, err
    code, out, _ = cli("exports", "show", "Feed", "--json")
    assert json.loads(out)["options"] == {"validate": False}
    assert cli("exports", "update", "Feed", "--validate")[0] == 0
    code, out, _ = cli("exports", "show", "Feed", "--json")
    assert json.loads(out)["options"] == {}

    breaking(monkeypatch, lambda data: data[:-10])
    target = tmp_path / "feed.jsonl"
    target.write_text("yesterday's feed\n")
    code, out, err = cli("--run", "Feed", "-o", str(target))
    assert code == 1, err
    assert "The file failed validation and was not published (line 20: the last line" in err
    assert "Traceback" not in err
    assert target.read_text() == "yesterday's feed\n", "the previous file is left alone"


def test_a_truncated_workbook(catalog, monkeypatch):
    d = define(catalog, "standard", "xlsx")
    breaking(monkeypatch, lambda data: data[: len(data) // 2])
    failed_with(service.run_export(d.export_id), r"not a readable workbook")


def test_a_workbook_with_a_product_row_fewer_is_a_count_mismatch(catalog, monkeypatch):
    import io
    import zipfile

    def drop_last_row(data: bytes) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w") as zout:
            for info in zin.infolist():
                member = zin.read(info)
                if info.filename == "xl/worksheets/sheet1.xml":  # the products sheet
                    member = re.sub(
                        rb"<row [^>]*>(?:(?!<row ).)*</row>(?=</sheetData>)",
                        b"",
                        member,
                        flags=re.S,
                    )
                zout.writestr(info, member)
        return out.getvalue()

    d = define(catalog, "standard", "xlsx")
    breaking(monkeypatch, drop_last_row)
    failed_with(service.run_export(d.export_id), r"sheet product: the file holds [\d,]+ rows, but")


# --- validation alongside writing (a follower process) ----------------------------------------

#: Every run follows its file, however small.
FOLLOW_ALL = '{"follow_min": 1}'
FOLLOWED_PAIRS = [
    ("standard", "csv"),
    ("developer", "csv"),
    ("standard", "jsonl"),
    ("developer", "jsonl"),
    ("standard", "json"),
    ("standard", "xml"),
    ("bmecat12", "xml"),
]


def verdicts(monkeypatch) -> list[object]:
    """The verdicts of the runs' followers, as they come (a spy: the follower runs)."""
    seen: list[object] = []
    verdict = validate.Follower.verdict

    def spy(self, size, expected):
        seen.append(result := verdict(self, size, expected))
        return result

    monkeypatch.setattr(validate.Follower, "verdict", spy)
    return seen


@pytest.mark.parametrize(("profile", "output"), FOLLOWED_PAIRS)
def test_a_followed_file_is_validated_while_it_is_written(catalog, monkeypatch, profile, output):
    monkeypatch.setenv("TUIEXPORT_TUNING", FOLLOW_ALL)
    seen = verdicts(monkeypatch)
    run = service.run_export(define(catalog, profile, output).export_id)
    assert run.status in ("success", "warning"), run.messages
    assert seen == [[]]


@pytest.mark.parametrize(("profile", "output"), FOLLOWED_PAIRS)
def test_a_follower_fails_a_broken_file_with_the_same_messages(
    catalog, monkeypatch, profile, output
):
    # A writer that ends its file with a broken record, as it writes (no seam after it).
    writer = registry.get_writer(profile, output)
    write = writer.write

    if output == "csv":  # the product member ends with a line whose quote never closes
        end_member = csv_zip.ZipPump.end_member

        def broken_end(pump):
            if not getattr(pump, "broke", False):
                pump.write(b'1,"unclosed\r\n')
                pump.broke = True
            end_member(pump)

        monkeypatch.setattr(csv_zip.ZipPump, "end_member", broken_end)

    def broken(job, out):
        stats = write(job, out)
        if output == "csv":
            return stats
        out.write(b'{"puid": 1, \n' if output.startswith("json") else b"<product><puid>1</pu")
        return stats

    monkeypatch.setattr(writer, "write", broken)
    export_id = define(catalog, profile, output).export_id
    after = service.run_export(export_id)
    monkeypatch.setenv("TUIEXPORT_TUNING", FOLLOW_ALL)
    seen = verdicts(monkeypatch)
    followed = service.run_export(export_id)
    assert seen and seen[0], "the follower gave the verdict"
    failed_with(followed)
    assert followed.messages == after.messages


@pytest.mark.parametrize("zip64", [False, True])
def test_a_streamed_zip_is_followed_member_by_member(tmp_path, zip64):
    # What the CSV writer writes (deflated members, data descriptors; ZIP64 sizes past
    # csv_zip.ZIP64_FROM products) is checked from its local headers; the central directory must
    # list what was read, and a member that is not what its descriptor says is a doubt.
    from datetime import datetime

    from tuiexport.storage.local import LocalWriter

    part = tmp_path / "f.zip.part"
    out = LocalWriter(tmp_path / "f.zip", part=part)
    pump = csv_zip.ZipPump(out, datetime(2026, 1, 1), zip64=zip64)
    for name, data in (("product.csv", b"puid,name\r\n1,a\r\n2,b\r\n"), ("x.txt", b"note\r\n")):
        pump.member(name)
        pump.write(data)
        pump.end_member()
    pump.finish()
    out.seal()
    with open(part, "rb") as reader:
        assert validate._zip_followed(part, reader, "product.csv", ",", 2)
    with open(part, "rb") as reader:
        assert not validate._zip_followed(part, reader, "product.csv", ",", 3)
    damaged = bytearray(part.read_bytes())
    damaged[damaged.index(b"PK\x07\x08") + 4] ^= 1  # the first member's CRC-32
    part.write_bytes(bytes(damaged))
    with open(part, "rb") as reader:
        assert not validate._zip_followed(part, reader, "product.csv", ",", 2)
