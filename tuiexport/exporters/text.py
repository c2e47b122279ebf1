"""Text rules every output shares: half-up rounding, XML escaping, what XML 1.0 forbids.

Standard library only: the worker processes (:mod:`tuiexport.exporters.worker`) import it too, so
the bytes a worker writes and the bytes the export process writes come from the same code.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

#: Characters XML 1.0 forbids (the C0 controls except tab, LF, CR; U+FFFE/U+FFFF; surrogates).
XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")

#: The forbidden C0 controls as bytes: in UTF-8 they are single bytes that never occur inside a
#: multi-byte sequence, so deleting them byte-wise is safe (and far faster than a regex).
_C0_FORBIDDEN = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20)])
_NONCHARS = (b"\xef\xbf\xbe", b"\xef\xbf\xbf")  # U+FFFE, U+FFFF


def byte_table(mapping: bytes = b"", to: bytes = b"") -> bytes:
    """A :meth:`bytes.translate` table for :func:`strip_xml_forbidden_utf8`: the forbidden C0
    controls -> NUL (itself forbidden), and ``mapping`` -> ``to``."""
    return bytes.maketrans(_C0_FORBIDDEN + mapping, b"\0" * len(_C0_FORBIDDEN) + to)


_STRIP = byte_table()


def strip_xml_forbidden(text: str) -> str:
    return XML_FORBIDDEN.sub("", text)


def strip_xml_forbidden_utf8(data: bytes, table: bytes = _STRIP) -> bytes:
    """Remove what XML 1.0 forbids from UTF-8 text (surrogates cannot occur in valid UTF-8);
    ``table`` (:func:`byte_table`) maps other bytes in the same pass.

    One translate() that maps every forbidden control to NUL, which is then deleted only where
    there is one: deleting in the same pass, and searching for the two noncharacters where no
    0xEF lead byte occurs, made this pass three times slower (7.5 ms per 1.4 MB)."""
    data = data.translate(table)
    if b"\0" in data:
        data = data.translate(None, b"\0")
    if b"\xef" in data:
        for seq in _NONCHARS:
            if seq in data:
                data = data.replace(seq, b"")
    return data


#: Markup built around raw values has ``<`` and ``>`` as these bytes, which UTF-8 text never
#: contains (and the catalog's text is UTF-8: every import checks it), so one pass over a whole
#: chunk escapes every value at once (:func:`markup_to_xml`). In ``str`` they are the lone
#: surrogates :data:`STR_LT` / :data:`STR_GT`, which ``encode("utf-8", "surrogateescape")`` turns
#: into these bytes (decoded text never holds a lone surrogate).
MARKUP_LT, MARKUP_GT = b"\xfe", b"\xff"
STR_LT, STR_GT = "\udcfe", "\udcff"
_ESCAPES = ((b"&", b"&amp;"), (b"<", b"&lt;"), (b">", b"&gt;"), (b"\r", b"&#13;"))
_BRACKETS = byte_table(MARKUP_LT + MARKUP_GT, b"<>")


def escape_in_markup(data: bytes) -> bytes:
    """:func:`xml_escape` of every value in markup with placeholder brackets (UTF-8)."""
    for raw, entity in _ESCAPES:
        if raw in data:
            data = data.replace(raw, entity)
    return data


def brackets_in_place(data: bytes) -> bytes:
    """Placeholders -> ``<`` / ``>``, in the pass that strips what XML 1.0 forbids."""
    return strip_xml_forbidden_utf8(data, _BRACKETS)


def markup_to_xml(data: bytes) -> bytes:
    """Markup with placeholder brackets around raw values (UTF-8) -> XML: values escaped,
    brackets in place, forbidden characters stripped."""
    return brackets_in_place(escape_in_markup(data))


def str_markup(text: str) -> str:
    """Markup written with ``<`` and ``>`` -> with the ``str`` placeholders."""
    return text.replace("<", STR_LT).replace(">", STR_GT)


def xml_escape(value: object) -> str:
    """``&``, ``<``, ``>`` as entities; CR as ``&#13;`` (parsers turn a raw CR into LF)."""
    return (
        str(value)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\r", "&#13;")
    )


def round_half_up(value: float, places: str) -> str:
    """Round half up on the shortest decimal form, as SQLite's printf does: 2.675 -> 2.68.

    ``places`` is the quantum as text: ``"0.01"`` or ``"0.001"``."""
    text = repr(float(value))
    digits = len(places) - 2
    _, _, decimals = text.partition(".")
    if "e" not in text and decimals[digits:] != "5":
        return f"{float(value):.{digits}f}"  # not a tie: nearest is half-up
    return str(Decimal(text).quantize(Decimal(places), rounding=ROUND_HALF_UP))
