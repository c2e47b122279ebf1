"""Every run ends with the truth: cancelled, a full disk, a kill at the very end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.shared_catalog import make_catalog, tx
from tuiexport import db as dbmod
from tuiexport import service

pytestmark = pytest.mark.slow


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    path = tmp_path / "shared.sqlite"
    make_catalog(path, 3000)
    return path


@pytest.mark.parametrize("name", ["Cat", "Big"])
def test_cancelling_mid_run_ends_cancelled_for_every_format(catalog: Path, name: str) -> None:
    """Cancelled after the first chunk, with the writer's cursors still open (BMEcat used to
    end ``failed: OperationalError: database table is locked``)."""
    dbmod.open_database(catalog, load_sample=False)
    seen: list[int] = []
    run = service.run_export(
        name, progress=lambda done, total: seen.append(done), cancel=lambda: any(seen)
    )
    assert run.status == "cancelled", run.messages
    assert run.messages == ["Cancelled before it finished."]
    assert not list(Path(run.artifact_path or "").parent.glob(".*.part"))
    again = service.run_export(name)  # the connection is still usable
    assert again.status in ("success", "warning"), again.messages


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare(1) to mount a tiny tmpfs")
def test_a_full_disk_during_a_bmecat_run_says_no_space(
    catalog: Path, isolated_home: Path, tmp_path: Path
) -> None:
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("no permission for a private mount namespace (needs root)")
    small = tmp_path / "small"
    small.mkdir()
    # 64 KiB: the BMEcat file of 3,000 products (a few MB) fills it in the middle of the run.
    script = (
        f"mount -t tmpfs -o size=65536 tmpfs {small} && TUIEXPORT_HOME={isolated_home} "
        f"{sys.executable} -m tuiexport --db {catalog} --run Cat -o {small}/cat.xml -q; "
        f'echo "exit=$?"; ls -a {small}'
    )
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=120
    )
    assert "exit=1" in done.stdout, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "No space left on device" in lines[0], done.stderr
    assert ".part" not in done.stdout
    history = json.loads(tx(isolated_home, "--db", str(catalog), "history", "--json").stdout)
    assert [r["status"] for r in history] == ["failed"]
    assert "No space left on device" in history[0]["messages"][-1]
