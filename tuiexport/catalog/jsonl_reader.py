"""The JSON Lines reader: one record per line, decoded by msgspec into :mod:`~tuiexport.catalog.records`.

Two things msgspec lets through or words poorly are handled here, at almost no cost to good rows:

* a key given twice in one object (msgspec keeps the last value): the decoded record is encoded
  again and its ``":`` (key ends) counted against the line's; only when they differ (a key written
  with its default value, a space before a colon, a duplicate) is the line parsed once more by
  :func:`duplicate_key`, which names the key;
* text that is not UTF-8, or a lone UTF-16 surrogate escape (``"\\ud800"``), which msgspec reports as
  "Input data was truncated": :func:`bad_json` says what is wrong and where.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from typing import Any

import msgspec

from tuiexport.catalog.bounds import MAX_BLANK_RUN, MAX_LINE, clip, reason, too_blank, too_long
from tuiexport.catalog.records import Record, RowError
from tuiexport.catalog.writer import CatalogWriter

_json_decoder = msgspec.json.Decoder(Record)
_json_encoder = msgspec.json.Encoder()
#: A key end with white space before its colon (the key count of such a line is not trusted).
_SPACED = re.compile(rb'"\s+:')


def read_jsonl(stream: io.BufferedIOBase, writer: CatalogWriter, name: str) -> None:
    read_lines(stream, writer, name, _record)


def _record(line: bytes) -> Record:
    record = _json_decoder.decode(line)
    if not same_keys(_json_encoder.encode(record), line):
        duplicate_key(line)
    return record


def read_lines(
    stream: io.BufferedIOBase,
    writer: CatalogWriter,
    name: str,
    record_of: Callable[[bytes], Record],
) -> None:
    """Feed ``writer`` one record per line of ``stream``, made by ``record_of`` (which decodes
    the line and may raise msgspec's errors or :class:`RowError`: the row is then reported and
    skipped). The limits (line length, runs of blank lines) and a leading byte-order mark are
    handled here for every JSON Lines reader."""
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
            writer.add(record_of(line))
        except msgspec.ValidationError as exc:
            writer.error(number, reason(exc))
        except msgspec.DecodeError as exc:
            writer.error(number, bad_json(line, exc))
        except RowError as exc:
            writer.error(number, str(exc))


def same_keys(encoded: bytes, line: bytes) -> bool:
    """Whether ``line`` has as many keys as the encoding of what it decoded to (then none is
    given twice: a duplicate adds a key end to the line, not to the record)."""
    return encoded.count(b'":') == line.count(b'":') and _SPACED.search(line) is None


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise RowError(f"key '{clip(key)}' appears twice in one object (which value is meant?)")
        seen[key] = value
    return seen


def duplicate_key(line: bytes) -> None:
    """Raise RowError naming the first key given twice in one object of ``line``, if any (the
    slow, exact check; msgspec already accepted the line)."""
    json.loads(line, object_pairs_hook=_pairs)


#: A \\u escape of a UTF-16 surrogate, with the backslashes before it (an even run is literal).
_SURROGATE = re.compile(rb"(\\+)u([dD][89a-fA-F][0-9a-fA-F]{2})")


def bad_json(line: bytes, exc: msgspec.DecodeError) -> str:
    """Why msgspec could not decode ``line``, in words (column = character, from 1)."""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as err:
        column = len(line[: err.start].decode("utf-8", "replace")) + 1
        return (
            f"invalid UTF-8 at column {column:,} (byte 0x{line[err.start]:02x}); "
            "is the file in another encoding?"
        )
    pending: re.Match[bytes] | None = None  # a high surrogate waiting for its low half
    for match in _SURROGATE.finditer(line):
        if len(match.group(1)) % 2 == 0:
            continue
        unit = int(match.group(2), 16)
        if unit < 0xDC00:  # high
            if pending is not None:
                break
            pending = match
        elif pending is not None and pending.end() == match.start():
            pending = None
        elif pending is not None:
            break
        else:
            pending = match
            break
    if pending is not None:
        column = len(line[: pending.start() + len(pending.group(1)) - 1].decode("utf-8")) + 1
        escape = "\\u" + pending.group(2).decode().lower()
        return (
            f"lone surrogate {escape} at column {column:,} (half of a UTF-16 pair, not a "
            "character; written by a tool that cut a string in the middle of an emoji?)"
        )
    return f"not valid JSON ({exc})"
