"""XLSX exports: one worksheet per element, written by XlsxWriter in ``constant_memory`` mode.

A spreadsheet is flat like the CSV ZIP, so this mirrors :mod:`.csv_zip`: one sheet per element of
the profile (``product``, ``supplierItem``, …) with the field names as header row, then ``Log``
(the products left out, with the reason). Cells are typed, which is what the CSV Excel variant
cannot do: text fields (EAN, SKUs, names — identifiers included) are text cells, so leading
zeros and ``1E5`` stay as they are and nothing becomes a formula; integers, prices (2 places)
and weights (3 places) are numbers; timestamps are date cells (UTC); booleans are booleans.

``constant_memory`` keeps one row in memory and streams each sheet to a temporary file; the
workbook is zipped into ``out`` at the end, so memory stays flat however large the export.
A sheet holds at most 1,048,576 rows (Excel's limit, the header included): an element with more
rows continues on ``supplierItem (2)``, ``supplierItem (3)``, … with the header repeated, and
the run's messages say so.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from tuiexport.exporters.base import ExportJob, WriteStats
from tuiexport.exporters.format import NUMBER_BOUND, parse_dt
from tuiexport.exporters.profiles import LOG_FIELDS, PROFILES, Element, Field
from tuiexport.exporters.sql import (
    chunks,
    field_sql,
    flags,
    flat_source,
    release_memory,
)
from tuiexport.exporters.summary import limit_reason, omitted_puids, supplier_names
from tuiexport.exporters.text import round_half_up

#: Excel's limit of characters in a cell; XlsxWriter cuts longer texts.
CELL_MAX = 32_767

Cell = Callable[[Worksheet, int, int, Any], None]


def _flat_query(job: ExportJob, element: Element, fields: tuple[Field, ...]) -> tuple[str, int]:
    """The raw values of one element in file order, after ``k`` leading columns (the child's
    puid for progress; for supplier items also the supplier id for the supplier shares)."""
    from_sql, order, extra, _ = flat_source(job, element)
    cols = ", ".join([*extra, *(field_sql(f, job) for f in fields)])
    return f"SELECT {cols} FROM {from_sql} ORDER BY {order}", len(extra)


@dataclass
class XlsxWriter:
    profile: str
    output: str = "xlsx"
    extension: str = "xlsx"
    media_type: str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

    def write(self, job: ExportJob, out: BinaryIO) -> WriteStats:
        profile = PROFILES[self.profile]
        release_memory(job)
        fl = flags(job)
        limit = max(2, job.tuning.xlsx_sheet_rows)
        suppliers: Counter[int] = Counter()
        phases = 1 + len(profile.children)
        total = job.total
        cut = 0
        with tempfile.TemporaryDirectory(prefix="tuiexport-xlsx-") as tmp:
            book = xlsxwriter.Workbook(
                out,
                {
                    "constant_memory": True,
                    "tmpdir": tmp,
                    # Text is text: never a formula, number or URL guessed from its content.
                    "strings_to_formulas": False,
                    "strings_to_numbers": False,
                    "strings_to_urls": False,
                },
            )
            book.set_properties({"created": job.started, "author": "tuiexport"})
            formats = {
                "price": book.add_format({"num_format": "0.00"}),
                "weight": book.add_format({"num_format": "0.000"}),
                "datetime": book.add_format({"num_format": "dd.mm.yyyy hh:mm"}),
            }
            bold = book.add_format({"bold": True})

            def cell(f: Field) -> Cell:
                if f.kind == "text":

                    def text(ws: Worksheet, r: int, c: int, v: Any) -> None:
                        nonlocal cut
                        if v is not None and v != "" and ws.write_string(r, c, str(v)) == -2:
                            cut += 1

                    return text
                if f.kind == "int":
                    return lambda ws, r, c, v: None if v is None else ws.write_number(r, c, int(v))
                if f.kind in ("price", "weight"):
                    places, fmt = ("0.01" if f.kind == "price" else "0.001"), formats[f.kind]
                    # Figures past NUMBER_BOUND are left empty, as in every other output.
                    return lambda ws, r, c, v: (
                        None
                        if v is None or not abs(v) < NUMBER_BOUND
                        else ws.write_number(r, c, float(round_half_up(v, places)), fmt)
                    )
                if f.kind == "datetime":
                    dfmt = formats["datetime"]
                    return lambda ws, r, c, v: (
                        None if v is None else ws.write_datetime(r, c, _seconds(parse_dt(v)), dfmt)
                    )
                if f.kind == "bool":
                    return lambda ws, r, c, v: (
                        None if v is None else ws.write_boolean(r, c, bool(v))
                    )
                raise ValueError(f.kind)

            def sheets(name: str, header: tuple[Field, ...]) -> Iterator[Worksheet]:
                """The element's sheet, then its continuation sheets, each with the header."""
                n = 1
                while True:
                    ws = book.add_worksheet(name if n == 1 else f"{name} ({n})")
                    for c, f in enumerate(header):
                        ws.write_string(0, c, f.name, bold)
                    ws.freeze_panes(1, 0)
                    yield ws
                    n += 1

            ok = False
            try:
                phase = 0
                for element in profile.elements:
                    fields = element.fields_for(fl)
                    writers = [cell(f) for f in fields]
                    sql, k = _flat_query(job, element, fields)
                    pages = sheets(element.name, fields)
                    ws, r, rows, extra_sheets = next(pages), 1, 0, 0
                    done, last = 0, None
                    for batch in chunks(job.db.execute_sql(sql)):
                        for row in batch:
                            if r >= limit:
                                ws, r = next(pages), 1
                                extra_sheets += 1
                            for c, (w, v) in enumerate(zip(writers, row[k:], strict=True)):
                                w(ws, r, c, v)
                            r += 1
                        rows += len(batch)
                        if k == 2:
                            suppliers.update(row[1] for row in batch)
                        if element.role == "child":
                            # Children come grouped by product: count the products they start.
                            for row in batch:
                                if row[0] != last:
                                    done, last = done + 1, row[0]
                        elif element.role == "main":
                            done += len(batch)
                        if element.role != "reference":
                            job.check(min(total, (phase * total + min(done, total)) // phases))
                    if extra_sheets:
                        job.messages.append(
                            f"{element.name}: {rows:,} rows are more than one sheet holds "
                            f"({limit - 1:,} rows below the header); continued on "
                            f"{extra_sheets} more sheet{'s' if extra_sheets > 1 else ''} "
                            f"({element.name} (2)…)."
                        )
                    if element.role != "reference":
                        phase += 1

                log = book.add_worksheet("Log")
                for c, f in enumerate(LOG_FIELDS):
                    log.write_string(0, c, f.name, bold)
                reason = limit_reason(job)
                r = 1
                for puids in omitted_puids(job):
                    for p in puids:
                        if r >= limit:
                            break
                        log.write_number(r, 0, int(p))
                        log.write_string(r, 1, reason)
                        r += 1
                if job.errors:
                    err = book.add_worksheet("ERROR")
                    for r, line in enumerate(job.errors[: limit - 1]):
                        err.write_string(r, 0, line)
                if cut:
                    job.messages.append(
                        f"{cut:,} text cells were longer than Excel's {CELL_MAX:,} characters "
                        "and were cut; the CSV and JSON outputs hold them whole."
                    )
                ok = True
            finally:
                if ok:
                    book.close()
                else:  # the part file is thrown away; close the sheets' temporary files
                    for sheet in book.worksheets():
                        fh = getattr(sheet, "row_data_fh", None)
                        if fh is not None:
                            fh.close()
        job.check(total)
        return WriteStats(total, supplier_names(job, suppliers))


def _seconds(value: datetime) -> datetime:
    return value.replace(microsecond=0)
