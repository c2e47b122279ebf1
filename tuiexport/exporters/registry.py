"""The one registry of data formats: which (profile, output) pairs exist and who writes them.

Adding an output = one module in ``exporters/`` (its writer and its format) and one line in
:data:`OUTPUTS_TABLE` (see docs/design/writers.md). Writers are imported when first asked for,
so listing the formats stays cheap.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from tuiexport.exporters.base import Writer

if TYPE_CHECKING:
    from tuiexport.exporters.validate import Validator

#: The profiles declared by field lists (tuiexport.exporters.profiles.PROFILES, in this order).
FIELD_PROFILES = ("standard", "standardUpdate", "developer")


@dataclass(frozen=True)
class Output:
    #: The definition's ``output`` value, e.g. "csv".
    name: str
    label: str
    #: The writer class by import path, ``"module:Class"``; constructed as ``Class(profile)``.
    writer: str
    profiles: tuple[str, ...] = FIELD_PROFILES
    #: Its validator by import path, ``"module:function"`` (see :mod:`.validate`): reads the
    #: written file back before it is published. Empty: the output is published unchecked.
    validator: str = ""
    #: Its writer fingerprints every product's records (:mod:`.fingerprints`) and writes the
    #: removed puids of a delta (issue 12): runs keep a manifest, consumers may ask for deltas.
    delta: bool = False


#: Where the validators live (``validate.<function>``).
_V = "tuiexport.exporters.validate:"
OUTPUTS_TABLE = (
    Output(
        "csv",
        "CSV (ZIP)",
        "tuiexport.exporters.csv_zip:CsvZipWriter",
        validator=_V + "csv_zip",
        delta=True,
    ),
    Output(
        "json",
        "JSON",
        "tuiexport.exporters.json_out:JsonWriter",
        validator=_V + "json_document",
        delta=True,
    ),
    Output(
        "jsonl",
        "JSON Lines",
        "tuiexport.exporters.json_out:JsonLinesWriter",
        validator=_V + "json_lines",
        delta=True,
    ),
    Output("xml", "XML", "tuiexport.exporters.xml_out:XmlWriter", validator=_V + "xml", delta=True),
    Output(
        "xlsx", "Excel (XLSX)", "tuiexport.exporters.xlsx_out:XlsxWriter", validator=_V + "xlsx"
    ),
    Output(
        "xml",
        "XML",
        "tuiexport.exporters.bmecat:BmecatWriter",
        ("bmecat12",),
        validator=_V + "bmecat",
    ),
)

PROFILE_LABELS = {
    "standard": "Standard",
    "standardUpdate": "Standard update (prices and stock)",
    "developer": "Developer (everything, normalised)",
    "bmecat12": "BMEcat 1.2",
}
#: Every profile and every output name, in the table's order.
PROFILES = tuple(dict.fromkeys(p for o in OUTPUTS_TABLE for p in o.profiles))
OUTPUTS = tuple(dict.fromkeys(o.name for o in OUTPUTS_TABLE))
OUTPUT_LABELS = {o.name: o.label for o in OUTPUTS_TABLE}

_PAIRS = {(p, o.name): o for o in OUTPUTS_TABLE for p in o.profiles}
_loaded: dict[tuple[str, str], Writer] = {}


def valid_pairs() -> list[tuple[str, str]]:
    return list(_PAIRS)


def is_valid_pair(profile: str, output: str) -> bool:
    return (profile, output) in _PAIRS


def get_writer(profile: str, output: str) -> Writer:
    key = (profile, output)
    if key not in _loaded:
        try:
            entry = _PAIRS[key]
        except KeyError:
            raise KeyError(f"{profile}/{output}") from None
        module, _, name = entry.writer.partition(":")
        _loaded[key] = cast(Writer, getattr(importlib.import_module(module), name)(profile))
    return _loaded[key]


def supports_delta(profile: str, output: str) -> bool:
    """Whether runs of this pair keep fingerprint manifests and answer deltas (issue 12)."""
    return _PAIRS[(profile, output)].delta


def validator_name(profile: str, output: str) -> str:
    """The import path of this pair's validator (``""``: not validated)."""
    return _PAIRS[(profile, output)].validator


def get_validator(profile: str, output: str) -> Validator | None:
    """The function that validates this pair's files (None: not validated)."""
    entry = _PAIRS[(profile, output)]
    if not entry.validator:
        return None
    module, _, name = entry.validator.partition(":")
    return cast("Validator", getattr(importlib.import_module(module), name))


def file_format(profile: str, output: str) -> str:
    """The history's "file format" column, e.g. ``standard CSV (ZIP)``."""
    if profile == "bmecat12":
        return "BMEcat 1.2 XML"
    return f"{profile} {OUTPUT_LABELS.get(output, output)}"


def file_extension(profile: str, output: str) -> str:
    """The extension of the file the pair writes, e.g. ``zip`` for a CSV export."""
    return get_writer(profile, output).extension
