"""Run one writer the way the engine does: ``prepare_selection`` on the connection, then write."""

from __future__ import annotations

import io
import tempfile
from datetime import datetime
from pathlib import Path

import msgspec

from tuiexport.engine import drop_selection, prepare_selection
from tuiexport.exporters.base import ExportJob, ExportOptions, WriteStats
from tuiexport.exporters.registry import get_validator, get_writer
from tuiexport.exporters.tuning import Tuning
from tuiexport.selection import Criteria

STARTED = datetime(2026, 1, 2, 3, 4, 5)


def make_job(
    db,
    profile: str,
    output: str,
    *,
    criteria: Criteria | None = None,
    limit: int = 200_000,
    language: str = "de",
    fallback: str = "de",
    long_descriptions: bool = True,
    options: dict | None = None,
    tuning: dict | None = None,
    cancelled=lambda: False,
    progress=lambda n: None,
) -> ExportJob:
    selected, omitted = prepare_selection(db, criteria or Criteria(suppliers="all"), limit)
    return ExportJob(
        db=db,
        export_id="6f1c2a4e-0d7b-4c1e-9a55-3b2f7c9d1e08",
        export_name='Test, "feed" & <co>',
        log_id="LOG0123456",
        started=STARTED,
        profile=profile,
        output=output,
        language=language,
        fallback_language=fallback,
        long_descriptions=long_descriptions,
        total=selected,
        omitted=omitted,
        limit=limit,
        options=msgspec.convert(options or {}, ExportOptions),
        tuning=msgspec.convert(tuning or {}, Tuning),
        progress=progress,
        cancelled=cancelled,
    )


def run(db, profile: str, output: str, **kw) -> tuple[bytes, WriteStats, ExportJob]:
    """Write, and check that the product's own validation accepts the file (every writer test,
    hostile and property-based texts included, is then also a test against false alarms)."""
    job = make_job(db, profile, output, **kw)
    buf = io.BytesIO()
    try:
        stats = get_writer(profile, output).write(job, buf)
    finally:
        drop_selection(db)
    data = buf.getvalue()
    check = get_validator(profile, output)
    assert check is not None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "artifact"
        path.write_bytes(data)
        problems = check(path, profile, stats.product_count, job.options)
    assert problems == [], problems
    return data, stats, job


# --- independent readers -------------------------------------------------------------------


def read_zip_csv(data: bytes, excel: bool = False) -> dict[str, list[dict]]:
    """Every CSV member of a ZIP, parsed by the csv module (header row -> dicts)."""
    import csv
    import zipfile

    members = {}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        for name in zf.namelist():
            if not name.endswith(".csv"):
                continue
            text = zf.read(name).decode("utf-8-sig" if excel else "utf-8")
            reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=";" if excel else ",")
            members[name] = list(reader)
    return members


def xml_records(data: bytes, tag: str = "product") -> list[dict]:
    """Records of an XML export, parsed by lxml: child elements -> dict; nested repeated
    elements -> lists under their tag."""
    from lxml import etree

    root = etree.fromstring(data)
    assert root.tag == "export"
    out = []
    for el in root.findall(tag):
        rec: dict = {}
        for child in el:
            if len(child):
                rec.setdefault(child.tag, []).append({c.tag: c.text or "" for c in child})
            else:
                rec[child.tag] = child.text or ""
        out.append(rec)
    return out
