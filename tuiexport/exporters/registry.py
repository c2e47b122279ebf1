"""The one registry of data formats: (profile, output) -> writer.

Adding a format = one module in ``exporters/`` and one line in :data:`WRITERS`.
"""

from __future__ import annotations

from tuiexport.exporters.base import Writer

PROFILES = ("standard", "standardUpdate", "developer", "bmecat12")
OUTPUTS = ("csv", "json", "jsonl", "xml")

PROFILE_LABELS = {
    "standard": "Standard",
    "standardUpdate": "Standard update (prices and stock)",
    "developer": "Developer (everything, normalised)",
    "bmecat12": "BMEcat 1.2",
}
OUTPUT_LABELS = {"csv": "CSV (ZIP)", "json": "JSON", "jsonl": "JSON Lines", "xml": "XML"}


def _writers() -> dict[tuple[str, str], Writer]:
    # Imported lazily so that listing formats does not import lxml & co.
    from tuiexport.exporters import writers

    return writers.WRITERS


def valid_pairs() -> list[tuple[str, str]]:
    return list(_writers())


def is_valid_pair(profile: str, output: str) -> bool:
    return (profile, output) in _writers()


def get_writer(profile: str, output: str) -> Writer:
    try:
        return _writers()[(profile, output)]
    except KeyError:
        raise KeyError(f"{profile}/{output}") from None


def file_format(profile: str, output: str) -> str:
    """The history's "file format" column, e.g. ``standard CSV (ZIP)``."""
    if profile == "bmecat12":
        return "BMEcat 1.2 XML"
    return f"{profile} {OUTPUT_LABELS.get(output, output)}"
