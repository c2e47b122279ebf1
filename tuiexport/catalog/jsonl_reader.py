"""The JSON Lines reader: one record per line, decoded by msgspec into :mod:`~tuiexport.catalog.records`."""

from __future__ import annotations

import io

import msgspec

from tuiexport.catalog.bounds import MAX_BLANK_RUN, MAX_LINE, reason, too_blank, too_long
from tuiexport.catalog.records import Record, RowError
from tuiexport.catalog.writer import CatalogWriter

_json_decoder = msgspec.json.Decoder(Record)


def read_jsonl(stream: io.BufferedIOBase, writer: CatalogWriter, name: str) -> None:
    number = blanks = 0
    while line := stream.readline(MAX_LINE + 1):
        number += 1
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            raise too_long(name, number)
        writer.grow(len(line))
        line = line.strip()
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):  # a byte-order mark
            line = line[3:]
        if not line:
            blanks += 1
            if blanks > MAX_BLANK_RUN:
                raise too_blank(name, number - blanks + 1)
            continue
        blanks = 0
        try:
            writer.add(_json_decoder.decode(line))
        except msgspec.ValidationError as exc:
            writer.error(number, reason(exc))
        except msgspec.DecodeError as exc:
            writer.error(number, f"not valid JSON ({exc})")
        except RowError as exc:
            writer.error(number, str(exc))
