"""Every (profile, output) pair and its writer: the table :mod:`registry` reads."""

from __future__ import annotations

from tuiexport.exporters.base import Writer
from tuiexport.exporters.bmecat import BmecatWriter
from tuiexport.exporters.csv_zip import CsvZipWriter
from tuiexport.exporters.json_out import JsonLinesWriter, JsonWriter
from tuiexport.exporters.xml_out import XmlWriter

WRITERS: dict[tuple[str, str], Writer] = {}
for _profile in ("standard", "standardUpdate", "developer"):
    WRITERS[(_profile, "csv")] = CsvZipWriter(_profile)
    WRITERS[(_profile, "json")] = JsonWriter(_profile)
    WRITERS[(_profile, "jsonl")] = JsonLinesWriter(_profile)
    WRITERS[(_profile, "xml")] = XmlWriter(_profile)
WRITERS[("bmecat12", "xml")] = BmecatWriter()
