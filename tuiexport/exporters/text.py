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


def strip_xml_forbidden(text: str) -> str:
    return XML_FORBIDDEN.sub("", text)


def strip_xml_forbidden_utf8(data: bytes, table: bytes | None = None) -> bytes:
    """Remove what XML 1.0 forbids from UTF-8 text (surrogates cannot occur in valid UTF-8);
    ``table`` (:meth:`bytes.maketrans`) maps other bytes in the same pass."""
    data = data.translate(table, _C0_FORBIDDEN)
    for seq in _NONCHARS:
        if seq in data:
            data = data.replace(seq, b"")
    return data


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
