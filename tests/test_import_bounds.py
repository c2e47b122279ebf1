"""Import stays bounded whatever the file (endless lines, gzip bombs, blank floods) and a stray
CSV quote never swallows rows silently. Real CLI processes under a memory limit."""

from __future__ import annotations

import gzip
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

#: The child may use this much address space; before the bounds, the endless cases grew past it.
MEMORY = 1 << 30


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def import_(work: Path, file: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUIEXPORT_")}
    env["TUIEXPORT_HOME"] = str(work / "home")
    return subprocess.run(
        [sys.executable, "-m", "tuiexport", "--db", "cat.sqlite", "catalog", "import", file.name],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        timeout=120,
        preexec_fn=_limit_memory,
    )


def one_sentence(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr, done.stderr[-2000:]
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tuiexport: "), done.stderr[-2000:]
    return lines[0]


@pytest.mark.parametrize("name", ["zero.jsonl", "zero.csv"])
def test_an_endless_line_stops_early_with_a_sentence(tmp_path: Path, name: str) -> None:
    (tmp_path / name).symlink_to("/dev/zero")
    done = import_(tmp_path, tmp_path / name)
    assert done.returncode == 2
    assert one_sentence(done) == (
        f"tuiexport: Line 1 of {name} is longer than 4 MiB, more than any catalog row (is it the "
        "right file, one record per line?); the rows before it were imported."
    )


def test_a_2_gb_line_after_good_rows_keeps_the_good_rows(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    with open(path, "wb") as f:
        f.write(b'{"kind":"supplier","id":1,"name":"Nordwind"}\n')
        f.truncate((2 << 30) + 100)  # sparse: costs no disk, reads as 2 GB of NUL bytes
    done = import_(tmp_path, path)
    assert done.returncode == 2
    assert "Line 2 of big.jsonl is longer than 4 MiB" in one_sentence(done)
    stats = subprocess.run(
        [sys.executable, "-m", "tuiexport", "--db", "cat.sqlite", "catalog", "stats", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert json.loads(stats.stdout)["suppliers"] == 1


def test_a_long_but_real_row_still_imports(tmp_path: Path) -> None:
    long_text = "Ausführliche Beschreibung, mit Absätzen.\n" * 85_000  # about 3.5 MiB
    rows = [
        {"kind": "supplier", "id": 1, "name": "Nordwind"},
        {
            "kind": "product",
            "puid": 7,
            "texts": {"de": {"name": "Notebook", "longDescription": long_text}},
            "offers": [{"supplierId": 1, "price": 9.5}],
        },
    ]
    path = tmp_path / "long.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    assert 3 << 20 < path.stat().st_size < 4 << 20
    done = import_(tmp_path, path)
    assert done.returncode == 0, done.stderr
    assert "1 added" in done.stdout


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_a_flood_of_blank_lines_is_refused_quickly(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"blank.{kind}.gz"
    head = b"puid\n" if kind == "csv" else b""
    with gzip.open(path, "wb") as f:
        f.write(head)
        for _ in range(3):
            f.write(b"\n" * (1 << 20))
        f.write(b"1\n" if kind == "csv" else b'{"kind":"product","puid":1}\n')
    done = import_(tmp_path, path)
    assert done.returncode == 2
    first = 2 if kind == "csv" else 1
    assert one_sentence(done) == (
        f"tuiexport: blank.{kind}.gz has more than 1,000,000 blank lines in a row from line "
        f"{first} (is it the right file?); the rows before them were imported."
    )


def test_a_gzip_bomb_is_refused_at_the_inflate_limit(tmp_path: Path) -> None:
    path = tmp_path / "bomb.jsonl.gz"
    line = b'{"kind":"supplier","id":1,"name":"' + b"x" * 960 + b'"}\n'
    with gzip.open(path, "wb", compresslevel=9) as f:
        for _ in range(100):  # 100 MB of rows in about 200 KB
            f.write(line * 1024)
    assert path.stat().st_size < 1 << 20
    done = import_(tmp_path, path)
    assert done.returncode == 2
    assert one_sentence(done).startswith(
        "tuiexport: bomb.jsonl.gz inflates to more than 64 MiB, over 100 times its size"
    )


HEADER = "puid,name.de,longDescription.de,supplier,price"


def csv_rows(n: int, broken: dict[int, str], every: int = 100) -> str:
    """``n`` product rows; row ``i`` in ``broken`` is written as given; every ``every``-th row has
    a real multi-line description (blank line and commas inside the quotes)."""
    rows = [HEADER]
    for i in range(1, n + 1):
        if i in broken:
            rows.append(broken[i])
            continue
        desc = '"Zeile 1, mit Komma\n\n12,5 cm, 3 Stück, 1,99"' if i % every == 0 else "kurz"
        rows.append(f"{1000 + i},Produkt {i},{desc},Nordwind,{i}.50")
    return "\n".join(rows) + "\n"


def test_a_stray_quote_skips_one_row_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "stray.csv"
    path.write_text(csv_rows(1000, {11: '1011,"Kabel 3m,kurz,Nordwind,11.50'}))
    done = import_(tmp_path, path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Imported stray.csv: 999 added, 0 updated, 1 skipped."
    assert done.stderr.splitlines() == [
        "line 12: a quoted field opened on this line is not closed: it runs over 90 lines "
        "(to line 101); the row is skipped and the lines after it are read again"
    ]


def test_two_stray_quotes_in_one_column_lose_no_row(tmp_path: Path) -> None:
    broken = {i: f'{1000 + i},"Kabel {i},kurz,Nordwind,1.00' for i in (11, 500)}
    path = tmp_path / "stray2.csv"
    path.write_text(csv_rows(1000, broken, every=10_000))
    done = import_(tmp_path, path)
    assert done.returncode == 0, done.stderr
    assert "998 added, 0 updated, 2 skipped" in done.stdout
    assert done.stderr.splitlines() == [
        "line 12: a quoted field opened on this line is not closed: it runs over 490 lines "
        "(to line 501); the row is skipped and the lines after it are read again",
        "line 501: a quoted field opened on this line is not closed: it runs to the end of the "
        "file; the row is skipped and the lines after it are read again",
    ]


def test_a_stray_quote_in_a_big_file_stops_at_the_row_limit_and_keeps_the_rest(
    tmp_path: Path,
) -> None:
    pad = "x" * 400
    rows = [HEADER, '1001,"Kabel,kurz,Nordwind,1.00']
    rows += [f"{1000 + i},Produkt {i} {pad},kurz,Nordwind,1.00" for i in range(2, 12_001)]
    path = tmp_path / "big.csv"
    path.write_text("\n".join(rows) + "\n")
    assert path.stat().st_size > 4 << 20
    done = import_(tmp_path, path)
    assert done.returncode == 0, done.stderr
    assert "11,999 added, 0 updated, 1 skipped" in done.stdout
    assert done.stderr.splitlines() == [
        "line 2: a quoted field opened on this line is not closed: it runs over 4 MiB; the row "
        "is skipped and the lines after it are read again"
    ]


def test_real_multi_line_texts_are_not_taken_for_stray_quotes(tmp_path: Path) -> None:
    path = tmp_path / "texts.csv"
    path.write_text(csv_rows(300, {}, every=3))
    done = import_(tmp_path, path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Imported texts.csv: 300 added, 0 updated, 0 skipped."
    assert done.stderr == ""


def test_too_many_stray_quotes_stop_the_import(tmp_path: Path) -> None:
    broken = {i: f'{1000 + i},"Kabel {i},kurz,Nordwind,1.00' for i in range(10, 1000, 5)}
    path = tmp_path / "quotes.csv"
    path.write_text(csv_rows(1000, broken, every=10**9))
    done = import_(tmp_path, path)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        "tuiexport: quotes.csv has more than 100 unclosed quotes (the first on line 11); fix the "
        "quoting and import again (the rows before were imported)."
    )


def test_one_product_takes_at_most_10000_offers(tmp_path: Path) -> None:
    path = tmp_path / "offers.csv"
    rows = ["puid,supplier,price", *(f"5,Supplier {i},1.00" for i in range(10_002))]
    path.write_text("\n".join(rows) + "\n")
    done = import_(tmp_path, path)
    assert done.returncode == 0, done.stderr
    assert "1 added, 0 updated, 2 skipped" in done.stdout
    assert done.stderr.splitlines() == [
        "line 10002: puid 5: more than 10,000 offers",
        "line 10003: puid 5: more than 10,000 offers",
    ]


def test_csv_header_mistakes(tmp_path: Path) -> None:
    lead = tmp_path / "lead.csv"
    lead.write_text("\n\npuid,name.de\n1,Kabel\n")
    done = import_(tmp_path, lead)
    assert done.returncode == 0 and "1 added" in done.stdout, done.stderr  # was: 0 added
    quote = tmp_path / "quote.csv"
    quote.write_text('puid,"name.de\n1,a\n2,b\n')
    done = import_(tmp_path, quote)
    assert done.returncode == 2
    assert one_sentence(done) == (
        "tuiexport: The header of quote.csv has an unclosed quote (a column name runs over "
        "several lines); fix it and import again."
    )
