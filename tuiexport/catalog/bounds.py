"""Bounds on what an import reads, so that no file can make it grow until memory runs out or run
for hours, and the one-line reasons a bad row or file gets.
"""

from __future__ import annotations

import re

import msgspec

from tuiexport.errors import UserError

# Bounds, so that no file can make an import grow until memory runs out or run for hours.
#: The longest line of JSON Lines, and the longest CSV row (all its physical lines), in bytes
#: (CSV: characters). A real product row with six languages of long descriptions and a hundred
#: offers is well under 1 MiB; 4 MiB leaves room and still keeps memory flat.
MAX_LINE = 4 << 20
#: More blank lines than this in a row is not a catalog (a gzip of newlines inflates to billions).
MAX_BLANK_RUN = 1_000_000
#: A gzip file may inflate to this many times its own size (real catalogs: 5-20x; a gzip bomb:
#: 1,000x), but always to at least MIN_INFLATE bytes. Apache POI uses the same 100x ratio for ZIP.
MAX_INFLATE_RATIO = 100
MIN_INFLATE = 64 << 20
#: Rows queued before they are written: CHUNK rows or about this many bytes of input.
CHUNK_BYTES = 32 << 20
#: Offers (CSV rows) of one product; a real product has at most a few hundred suppliers.
MAX_OFFERS = 10_000
#: Unclosed CSV quotes repaired (row skipped, the lines after it read again) before giving up.
MAX_STRAY_QUOTES = 100


def clip(text: str, width: int = 60) -> str:
    """A value from the file, short and on one line, for a one-line message."""
    text = " ".join(text[: width * 4].split())
    return text if len(text) <= width else text[: width - 1] + "…"


_PATH = re.compile(r"^(.*) - at (`key` in )?`\$\.?(.*)`$")


def reason(exc: msgspec.MsgspecError) -> str:
    """msgspec's message as one line: ``field: what is wrong``."""
    text = str(exc).replace("\n", " ")
    match = _PATH.match(text)
    if match:
        message, key, path = match.groups()
        if key:
            message += " (as a key)"
        return f"{path}: {message}" if path else message
    return text


def too_long(name: str, number: int) -> UserError:
    return UserError(
        f"Line {number:,} of {name} is longer than {MAX_LINE >> 20} MiB, more than any catalog "
        "row (is it the right file, one record per line?); the rows before it were imported."
    )


def too_blank(name: str, number: int) -> UserError:
    return UserError(
        f"{name} has more than {MAX_BLANK_RUN:,} blank lines in a row from line {number:,} "
        "(is it the right file?); the rows before them were imported."
    )
