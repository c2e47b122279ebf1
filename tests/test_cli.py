"""The command line as cron and scripts see it: exit codes, one-sentence errors, --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import tiny_catalog
from tuiexport import db as dbmod
from tuiexport import setup
from tuiexport.cli import main


@pytest.fixture
def dbfile(tmp_path):
    path = tmp_path / "cli.sqlite"
    setup.prepare_database(path, load_sample=False)
    tiny_catalog.build()
    dbmod.close_database()
    return str(path)


def cli(capsys, dbfile, *args) -> tuple[int, str, str]:
    code = main(["--db", dbfile, *args])
    out, err = capsys.readouterr()
    return code, out, err


def make_export(capsys, dbfile, *extra) -> dict:
    code, out, err = cli(
        capsys, dbfile, "selections", "create", "--criteria", '{"suppliers": "all"}', "--json"
    )
    assert code == 0, err
    sel = json.loads(out)
    code, out, err = cli(
        capsys,
        dbfile,
        "exports",
        "create",
        "--name",
        "Feed",
        "--selection",
        str(sel["id"]),
        "--profile",
        "standard",
        "--output",
        "jsonl",
        "--json",
        *extra,
    )
    assert code == 0, err
    return json.loads(out)


def test_run_by_name_prints_the_file_and_records_history(capsys, dbfile):
    export = make_export(capsys, dbfile)
    assert export["valid"] and export["selection_name"] == "All suppliers"
    code, out, err = cli(capsys, dbfile, "--run", "Feed")
    assert code == 0, err
    path = Path(out.strip())
    assert path.is_file() and len(path.read_text().splitlines()) == 20
    code, out, _ = cli(capsys, dbfile, "history", "--json")
    runs = json.loads(out)
    assert [(r["status"], r["trigger"], r["product_count"]) for r in runs] == [
        ("success", "cli", 20)
    ]
    code, out, _ = cli(capsys, dbfile, "history", runs[0]["log_id"])
    assert code == 0 and "success" in out and "products 20" in out


def test_run_to_stdout_streams_the_same_bytes(capsys, dbfile):
    make_export(capsys, dbfile)
    code, out, err = cli(capsys, dbfile, "--run", "Feed", "-o", "-")
    assert code == 0, err
    assert [json.loads(line)["puid"] for line in out.splitlines()] == list(range(1001, 1021))


def test_run_to_a_file_path(capsys, dbfile, tmp_path):
    make_export(capsys, dbfile)
    target = tmp_path / "feed.jsonl"
    code, out, err = cli(capsys, dbfile, "--run", "Feed", "-o", str(target))
    assert code == 0, err
    assert out.strip() == str(target) and len(target.read_text().splitlines()) == 20


def test_warning_exits_zero_and_says_what_was_cut(capsys, dbfile):
    make_export(capsys, dbfile, "--limit", "3")
    code, _out, err = cli(capsys, dbfile, "--run", "Feed")
    assert code == 0
    assert "warning: 17 of 20 products were left out" in err


@pytest.mark.parametrize(
    "args,message",
    [
        (["--run", "nope"], "There is no export 'nope'"),
        (["--run", "Draft"], "The export 'Draft' is invalid: No product selection is assigned."),
        (["exports", "show", "nope"], "There is no export 'nope'"),
        (
            ["selections", "create", "--criteria", "{oops"],
            "The selection criteria are not valid JSON",
        ),
        (
            ["selections", "create", "--criteria", '{"price_min": "cheap"}'],
            "The selection criteria are invalid",
        ),
        (["exports", "create", "--limit", "999999"], "above the contract limit"),
        (["exports", "frobnicate"], "Argument ACTION: invalid choice"),
        (["-o", "x.csv"], "-o/--output only works with --run"),
        (
            ["--run", "Feed", "-o", "/nonexistent/dir/x"],
            "The folder /nonexistent/dir does not exist.",
        ),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(capsys, dbfile, args, message):
    make_export(capsys, dbfile)
    cli(capsys, dbfile, "exports", "create", "--name", "Draft")
    code, _out, err = cli(capsys, dbfile, *args)
    assert code == 2
    assert err.startswith("tuiexport: ") and message in err
    assert err.count("\n") == 1, "exactly one line"
    assert "Traceback" not in err


def test_exports_crud_and_share_url(capsys, dbfile):
    export = make_export(capsys, dbfile)
    eid = export["export_id"]
    code, out, _ = cli(
        capsys, dbfile, "exports", "update", eid, "--name", "Renamed", "--language", "en", "--json"
    )
    assert (
        code == 0 and json.loads(out)["name"] == "Renamed" and json.loads(out)["language"] == "en"
    )
    code, out, _ = cli(capsys, dbfile, "exports", "share-url", "Renamed")
    assert (
        out.strip()
        == f"http://127.0.0.1:8421/api/v1/exports/{eid}/download?token={export['share_token']}"
    )
    code, out, _ = cli(capsys, dbfile, "exports", "rotate-token", eid, "--json")
    assert export["share_token"] not in json.loads(out)["shareUrl"]
    code, out, _ = cli(capsys, dbfile, "exports", "list")
    assert eid in out and "Renamed" in out
    code, out, _ = cli(capsys, dbfile, "exports", "delete", eid)
    assert code == 0 and "Deleted the export 'Renamed'" in out
    code, out, _ = cli(capsys, dbfile, "exports", "list", "--json")
    assert json.loads(out) == []


def test_selections_crud(capsys, dbfile, tmp_path):
    criteria = tmp_path / "c.json"
    criteria.write_text('{"suppliers": "all", "manufacturer_ids": [1]}')
    code, out, err = cli(
        capsys, dbfile, "selections", "create", "--criteria", f"@{criteria}", "--json"
    )
    assert code == 0, err
    sid = str(json.loads(out)["id"])
    code, out, _ = cli(capsys, dbfile, "selections", "show", sid, "--json")
    assert json.loads(out)["count"] == 6
    code, out, _ = cli(capsys, dbfile, "selections", "show", sid, "--preview", "2")
    assert "products  6" in out and "1003" in out
    code, out, _ = cli(capsys, dbfile, "selections", "update", sid, "--name", "Lenovo only")
    assert code == 0 and "#1 Lenovo only" in out
    code, out, _ = cli(capsys, dbfile, "selections", "list")
    assert "Lenovo only" in out
    code, out, _ = cli(capsys, dbfile, "selections", "delete", "Lenovo only")
    assert code == 0


def test_output_named_for_another_format_is_refused(capsys, dbfile, tmp_path):
    """Issue 11 §2.5: ``-o feed.csv`` for a ZIP export wrote a ZIP under a .csv name."""
    sel = make_export(capsys, dbfile)["selection_id"]
    code, _out, err = cli(
        capsys,
        dbfile,
        "exports",
        "create",
        "--name",
        "Zipped",
        "--output",
        "csv",
        "--selection",
        str(sel),
    )
    assert code == 0, err
    target = tmp_path / "feed.csv"
    code, _out, err = cli(capsys, dbfile, "--run", "Feed", "-o", str(target))
    assert code == 2 and err.count("\n") == 1
    assert (
        f"-o {target}: the export 'Feed' writes a .jsonl file (standard JSON Lines), not .csv; "
        "name it feed.jsonl, or give a folder."
    ) in err
    assert not target.exists()
    code, _out, err = cli(capsys, dbfile, "--run", "Zipped", "-o", str(target))
    assert code == 2 and "writes a .zip file (standard CSV (ZIP)), not .csv" in err
    assert not target.exists() and "Traceback" not in err
    # The right extension (any case), no extension, or a folder: written.
    for name in ("feed.ZIP", "feed"):
        code, out, err = cli(capsys, dbfile, "--run", "Zipped", "-o", str(tmp_path / name))
        assert code == 0, err
        assert (tmp_path / name).read_bytes()[:2] == b"PK"
    code, out, err = cli(capsys, dbfile, "--run", "Zipped", "-o", str(tmp_path))
    assert code == 0 and out.strip().endswith(".zip")
