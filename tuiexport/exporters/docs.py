"""Refresh the generated field lists in the docs: ``python -m tuiexport.exporters.docs``.

The lists live between the markers on :data:`PAGE` (the "Data formats" page of the docs site);
a test fails when that page and :func:`tuiexport.exporters.profiles.markdown` drift apart.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tuiexport.exporters.profiles import markdown

START, END = "<!-- fields:start -->", "<!-- fields:end -->"
#: The page that holds the field lists, relative to the repository root.
PAGE = Path("docs/guide/formats.md")


def refresh(path: Path) -> bool:
    """Rewrite the part between the markers; returns True when the file changed."""
    text = path.read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{markdown()}{END}{tail}"
    if new != text:
        path.write_text(new, encoding="utf-8")
        return True
    return False


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else PAGE
    print(f"{target}: {'updated' if refresh(target) else 'already current'}")
