"""The core, the CLI's headless paths and the share server start without importing Textual."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import tuiexport.cli, tuiexport.service, tuiexport.engine, tuiexport.tui
import tuiexport.tui_runs
try:
    import tuiexport.server
except ImportError:
    pass
from tuiexport.cli import build_parser
build_parser()
loaded = sorted(m for m in sys.modules if m == "textual" or m.startswith("textual."))
assert not loaded, loaded
"""


def test_core_does_not_import_textual():
    result = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
