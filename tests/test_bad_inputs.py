"""Bad input on the real command line: always one sentence on stderr and exit 2 (1 for a failed
write), never a traceback. Each case here printed a traceback, replaced a device by a file, or
started the TUI, before it was fixed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

NOT_UTF8 = b"\xed\xa0\x80name"  # what a Latin-1 terminal sends; Python decodes it to surrogates


def tx(
    work: Path,
    *args: str | bytes,
    env: dict[str, str] | None = None,
    stdin: bytes = b"",
    stdout: int | None = None,
) -> subprocess.CompletedProcess[bytes]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TUIEXPORT_")}
    full_env.update({"TUIEXPORT_HOME": str(work / "home"), **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "tuiexport", *args],
        input=stdin,
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=full_env,
        cwd=work,
        timeout=120,
    )


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("bad-inputs")
    (work / "home").mkdir()
    made = tx(work, "--db", "ok.sqlite", "catalog", "demo", "--products", "30")
    assert made.returncode == 0, made.stderr
    (work / "junk.sqlite").write_bytes(bytes(range(256)) * 40)
    (work / "cut.sqlite").write_bytes(b"SQLite format 3\x00" + b"\x00" * 50)
    (work / "folder").mkdir()
    data = (work / "ok.sqlite").read_bytes()
    for name, keep in (("rotten-early", 4096), ("rotten-late", len(data) * 7 // 10 // 4096 * 4096)):
        # The first pages intact (header, table list), the rest garbage: found on opening, or
        # only by a query that reads the late pages.
        (work / f"{name}.sqlite").write_bytes(data[:keep] + b"\xde\xad" * ((len(data) - keep) // 2))
    (work / "latin1.toml").write_bytes(b"producer = 'M\xfcller'\n")
    (work / "invalid.toml").write_text("server_port = [\n")
    (work / "wrongtype.toml").write_text('server_port = "high"\n')
    (work / "port.toml").write_text("server_port = 70000\n")
    (work / "latin1.json").write_bytes(b'{"search": "M\xfcller"}')
    os.mkfifo(work / "pipe")
    return work


@dataclass
class Case:
    id: str
    args: list[str | bytes]
    message: str
    code: int = 2
    env: dict[str, str] = field(default_factory=dict)
    stdin: bytes = b""
    full_stdout: bool = False


DB = ["--db", "ok.sqlite"]
BIG = "99999999999999999999999"
CASES = [
    Case("damaged-db", ["--db", "junk.sqlite", "exports", "list"], "is not a SQLite database"),
    Case("cut-db", ["--db", "cut.sqlite", "history"], "file is not a database"),
    Case("dev-null-db", ["--db", "/dev/null", "exports", "list"], "is not a regular file"),
    Case("dev-null-import", ["--db", "/dev/null", "catalog", "demo", "--products", "1"], "device"),
    Case("folder-db", ["--db", "folder", "exports", "list"], "it is a folder"),
    Case(
        "rotten-early-db",
        ["--db", "rotten-early.sqlite", "catalog", "stats"],
        "database disk image is malformed; it is damaged",
    ),
    Case(
        "rotten-late-db",
        ["--db", "rotten-late.sqlite", "catalog", "stats"],
        "database disk image is malformed; it is damaged",
    ),
    Case("port-high", [*DB, "serve", "--port", "70000"], "'70000' is not a whole number from 0"),
    Case("port-negative", [*DB, "serve", "--port", "-1"], "'-1' is not a whole number from 0"),
    Case(
        "port-config",
        [*DB, "serve"],
        "Expected `int` <= 65535",
        env={"TUIEXPORT_CONFIG": "port.toml"},
    ),
    Case(
        "port-env",
        [*DB, "serve"],
        "The environment variable TUIEXPORT_SERVER_PORT is invalid",
        env={"TUIEXPORT_SERVER_PORT": "70000"},
    ),
    Case(
        "config-not-utf8",
        [*DB, "exports", "list"],
        "The configuration file latin1.toml is not UTF-8 text",
        env={"TUIEXPORT_CONFIG": "latin1.toml"},
    ),
    Case(
        "config-not-toml",
        [*DB, "exports", "list"],
        "is not valid TOML",
        env={"TUIEXPORT_CONFIG": "invalid.toml"},
    ),
    Case(
        "config-wrong-type",
        [*DB, "serve"],
        "Expected `int`, got `str` - at `$.server_port`",
        env={"TUIEXPORT_CONFIG": "wrongtype.toml"},
    ),
    Case(
        "config-folder",
        [*DB, "exports", "list"],
        "Cannot read the configuration file folder: Is a directory.",
        env={"TUIEXPORT_CONFIG": "folder"},
    ),
    Case(
        "criteria-huge-id",
        [*DB, "selections", "create", "--criteria", f'{{"manufacturer_ids": [{BIG}]}}'],
        "Expected `int` <= 9223372036854775807 - at `$.manufacturer_ids[0]`",
    ),
    Case(
        "criteria-huge-negative-id",
        [*DB, "selections", "create", "--criteria", f'{{"supplier_ids": [-{BIG}]}}'],
        "Expected `int` >= -9223372036854775808",
    ),
    Case(
        "criteria-file-not-utf8",
        [*DB, "selections", "create", "--criteria", "@latin1.json"],
        "The criteria file latin1.json is not UTF-8 text",
    ),
    Case(
        "criteria-stdin-not-utf8",
        [*DB, "selections", "create", "--criteria", "-"],
        "Standard input is not UTF-8 text",
        stdin=b'{"search": "\xff"}',
    ),
    Case(
        "criteria-stdin-endless",
        [*DB, "selections", "create", "--criteria", "-"],
        "Standard input is larger than 1 MiB",
        stdin=b" " * (2 << 20),
    ),
    Case(
        "selection-huge-number", [*DB, "selections", "show", BIG], "There is no product selection"
    ),
    Case(
        "export-huge-selection",
        [*DB, "exports", "create", "--name", "X", "--selection", BIG],
        "There is no product selection",
    ),
    Case(
        "preview-huge",
        [*DB, "selections", "show", "1", "--preview", BIG],
        "is not a whole number from 0 to 1,000,000",
    ),
    Case(
        "preview-negative",
        [*DB, "selections", "show", "1", "--preview", "-5"],
        "'-5' is not a whole number",
    ),
    Case("history-limit-huge", [*DB, "history", "--limit", BIG], "is not a whole number from 1"),
    Case("history-limit-negative", [*DB, "history", "--limit", "-1"], "'-1' is not a whole"),
    Case(
        "demo-endless",
        [*DB, "catalog", "demo", "--products", BIG],
        "is not a whole number from 1 to 100,000,000",
    ),
    Case("name-not-utf8", [*DB, "exports", "create", "--name", NOT_UTF8], "is not valid UTF-8"),
    Case("key-not-utf8", [*DB, "apikey", "create", NOT_UTF8], "is not valid UTF-8 text"),
    Case("run-not-utf8", [*DB, "--run", NOT_UTF8], "is not valid UTF-8 text"),
    Case("run-empty", [*DB, "--run", ""], "--run needs an export ID or name"),
    Case("output-empty", [*DB, "--run", "Shop feed", "-o", ""], "-o needs a file or folder path"),
    Case(
        "output-pipe",
        [*DB, "--run", "Shop feed", "-o", "pipe"],
        "-o pipe is not a regular file or a folder",
    ),
    Case(
        "stdout-full",
        [*DB, "--run", "Shop feed", "-o", "-", "-q"],
        "No space left on device",
        code=1,
        full_stdout=True,
    ),
    Case(
        "list-to-full",
        [*DB, "exports", "list"],
        "No space left on device",
        code=1,
        full_stdout=True,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_sentence(work: Path, case: Case) -> None:
    if case.full_stdout and not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    if case.full_stdout:
        with open("/dev/full", "wb") as full:
            done = tx(work, *case.args, env=case.env, stdin=case.stdin, stdout=full.fileno())
    else:
        done = tx(work, *case.args, env=case.env, stdin=case.stdin)
    err = done.stderr.decode("utf-8", "replace")
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tuiexport: "), err
    assert case.message in lines[0]
    assert done.returncode == case.code, err
    if case.id == "output-pipe":
        assert (work / "pipe").is_fifo(), "the pipe must not be replaced by a file"


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare(1) to mount a tiny tmpfs")
def test_full_disk_during_a_csv_zip_export_gives_one_sentence(tmp_path: Path) -> None:
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("no permission for a private mount namespace (needs root)")
    work = tmp_path  # the autouse fixture made work / "home"
    made = tx(work, "--db", "c.sqlite", "catalog", "demo", "--products", "8000")
    assert made.returncode == 0, made.stderr
    # The developer profile writes several CSVs per product: well over the 1 MiB write buffer,
    # so the disk fills while a ZIP member is open.
    made = tx(
        work,
        *("--db", "c.sqlite", "exports", "create", "--name", "Dev"),
        *("--selection", "Whole catalog", "--profile", "developer", "--output", "csv"),
    )
    assert made.returncode == 0, made.stderr
    probe = tx(work, "--db", "c.sqlite", "--run", "Dev", "-o", "probe.zip", "-q")
    assert probe.returncode == 0, probe.stderr
    size = (work / "probe.zip").stat().st_size
    assert size > 1 << 20
    small = work / "small"
    small.mkdir()
    # Where the disk fills decides which write fails (and on which thread): try a few sizes.
    for room in (128 << 10, 256 << 10, 512 << 10):
        script = (
            f"mount -t tmpfs -o size={room} tmpfs {small} && "
            f"TUIEXPORT_HOME={work / 'home'} {sys.executable} -m tuiexport "
            f"--db {work / 'c.sqlite'} --run Dev -o {small}/feed.zip -q; "
            f"echo exit=$?; ls -a {small}"
        )
        done = subprocess.run(
            ["unshare", "-m", "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=work,
        )
        assert "exit=1" in done.stdout, done.stdout + done.stderr
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "No space left on device" in lines[0], done.stderr
        assert ".part" not in done.stdout
