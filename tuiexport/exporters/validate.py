"""Every artifact is read back before it is published (issue 11).

One function per output family, named beside its writer in :data:`registry.OUTPUTS_TABLE`:

* BMEcat: the official 1.2 schema (:func:`tuiexport.formats.bmecat12_schema`), validated while
  lxml parses (``iterparse(..., schema=...)``: libxml2 checks the SAX stream, so finished
  ``ARTICLE`` elements are dropped and memory stays flat on a multi-GB file);
* CSV in a ZIP: every ``.csv`` member through Python's ``csv`` reader (strict quoting), every
  row with the header's number of fields;
* JSON: a line-by-line tokenizer (every token of a JSON text lies within one line), each record
  decoded whole; JSON Lines: every line decoded; XML: well-formed by lxml's ``iterparse``.

Each counts the products it read; a count that differs from what the writer reported is a
problem too. A validator returns its problems (``"line 12, element ARTICLE: reason"``, at most
:data:`MAX_PROBLEMS`); :func:`artifact` is the one call the engine makes between "the part file
is written" and "the part file is renamed onto its target".
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import copy
import csv
import functools
import io
import json
import operator
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

import msgspec

from tuiexport.exporters.profiles import PROFILES

if TYPE_CHECKING:
    from tuiexport.exporters.base import ExportJob, ExportOptions, Writer, WriteStats

#: At most this many problems are reported (a broken file usually breaks everywhere).
MAX_PROBLEMS = 5

#: The products the writer reported: a number, or (a follower's) a function that gives it once
#: the file is complete.
Expected = int | Callable[[], int]


class Validator(Protocol):
    """(file, profile, products the writer reported, options) -> problems. ``reader``: read the
    file from it instead of opening ``path`` (a follower's, while the file grows); only the
    validators in :data:`FOLLOWED` take one."""

    def __call__(
        self,
        path: Path,
        profile: str,
        expected: Expected,
        options: ExportOptions,
        *,
        reader: IO[bytes] | None = None,
    ) -> list[str]: ...


#: The validators that can read their file as one stream from start to end, so they can follow
#: it while it is written (:class:`Follower`); an XLSX workbook is read from its end.
FOLLOWED = ("json_lines", "json_document", "xml", "bmecat", "csv_zip")


def _expected(expected: Expected) -> int:
    return expected if isinstance(expected, int) else expected()


@contextmanager
def _opened(path: Path, reader: IO[bytes] | None) -> Iterator[IO[bytes]]:
    if reader is not None:
        yield reader
        return
    with open(path, "rb") as f:
        yield f


#: Tests only: called with the part file after it is written and before it is validated, so a
#: test can make a file go wrong the way a misbehaving writer would. Never set in the product.
before_validate: Callable[[Path], None] | None = None


#: How the last message of a run whose file failed validation begins (runs.newest_withheld).
FAILED = "The file failed validation and was not published"


class InvalidArtifact(Exception):
    """The written file failed its validation: it is not published."""

    def __init__(self, problems: list[str]):
        super().__init__(problems[0] if problems else "invalid")
        self.problems = problems

    @property
    def messages(self) -> list[str]:
        """The problems, then one sentence that says it all (the CLI's error, the server's
        problem detail: front ends that show one message show the last)."""
        more = len(self.problems) - 1
        return [
            *self.problems,
            f"{FAILED} ({self.problems[0]}"
            + (f"; {more} more problem{'s' if more != 1 else ''} above" if more else "")
            + "); share URLs keep serving the previous file.",
        ]


def artifact(
    writer: Writer,
    path: Path,
    job: ExportJob,
    stats: WriteStats,
    follower: Follower | None = None,
    size: int = 0,
) -> None:
    """Validate the part file ``path`` (``size`` bytes) written by ``writer``; raise
    :class:`InvalidArtifact`. With a ``follower`` (:func:`follow`) that read the file while it
    was written, only its verdict is waited for.

    Does nothing when the definition switched validation off (``ExportOptions.validate``)."""
    from tuiexport.exporters import registry

    if before_validate is not None:
        before_validate(path)
    if not applies(writer, job.options):
        return
    problems = follower.verdict(size, stats.product_count) if follower is not None else None
    if problems is None:  # no follower, or it failed itself: the file is read now
        check = registry.get_validator(writer.profile, writer.output)
        assert check is not None  # applies() says there is one
        problems = check(path, writer.profile, stats.product_count, job.options)
    if problems:
        raise InvalidArtifact(problems[:MAX_PROBLEMS])


class Follower:
    """A validator reading the part file while the export writes it, in a process of its own
    (:mod:`tuiexport.exporters.follow`): on two cores the check runs beside the writing
    instead of after it. The file is still checked whole before it is published: the
    verdict comes once the follower has read it to its last byte."""

    def __init__(self, validator: str, path: Path, profile: str, options: ExportOptions):
        import subprocess
        import sys

        import msgspec

        from tuiexport.exporters import parallel

        # By name: the follower's module imports this one.
        self.proc = subprocess.Popen(
            [sys.executable, "-E", "-s", "-m", "tuiexport.exporters.follow"],
            cwd=parallel.PACKAGE_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        spec = {
            "validator": validator,
            "path": str(path),
            "profile": profile,
            "options": msgspec.to_builtins(msgspec.structs.asdict(options)),
        }
        self._send(spec)

    def _send(self, message: object) -> None:
        assert self.proc.stdin is not None  # opened with stdin=PIPE
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def verdict(self, size: int, expected: int) -> list[str] | None:
        """The problems the follower found in the complete file of ``size`` bytes and
        ``expected`` products; None if it could not say (it is then read again)."""
        try:
            self._send({"size": size, "expected": expected})
            assert self.proc.stdout is not None  # opened with stdout=PIPE
            answer = self.proc.stdout.read()
            code = self.proc.wait()
            problems = json.loads(answer) if code == 0 and answer else None
        except (OSError, ValueError):
            problems = None
        finally:
            self.stop()
        return problems if isinstance(problems, list) else None

    def stop(self) -> None:
        """End the follower (the run stopped, or its verdict is in)."""
        if self.proc.returncode is None:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def follow(writer: Writer, path: Path, job: ExportJob) -> Follower | None:
    """A :class:`Follower` of the part file ``path`` that ``writer`` is about to write, if its
    file is validated, its validator can follow it (:data:`FOLLOWED`) and the run is large
    enough to pay for one more process (``Tuning.follow_min`` products); else None."""
    from tuiexport.exporters import registry

    if before_validate is not None or not applies(writer, job.options):
        return None  # (the test seam changes the file after it is written)
    if job.total < job.tuning.follow_min:
        return None
    validator = registry.validator_name(writer.profile, writer.output)
    if validator.rpartition(":")[2] not in FOLLOWED:
        return None
    try:
        return Follower(validator, path, writer.profile, job.options)
    except OSError:
        return None  # validated after the run, as without a follower


def applies(writer: Writer, options: ExportOptions) -> bool:
    """Whether :func:`artifact` checks this writer's files under these options."""
    from tuiexport.exporters import registry

    return options.validate and registry.get_validator(writer.profile, writer.output) is not None


def _count_problem(found: int, expected: int, what: str) -> str:
    return (
        f"the file holds {found:,} {what}{'' if found == 1 else 's'}, "
        f"but the run wrote {expected:,}"
    )


# --- BMEcat and XML ---------------------------------------------------------------------------


_ELEMENT = re.compile(r"^Element '(?:\{[^}]*\})?([^']+)'(?:, attribute '([^']+)')?: ")
_NAMESPACED = re.compile(r"\{[^}]*\}")
_POSITION = re.compile(r", line \d+, column \d+$")


def _xml_problem(exc: Any, line_of: Callable[[], tuple[int, str]] | None = None) -> str:
    """One line of an lxml error: its line, the element, the reason (namespaces left out).

    A well-formedness error knows its line; a schema error found while streaming does not
    (libxml2 validates the SAX stream), so ``line_of`` finds it (only ever for a failed run)."""
    text = str(getattr(exc, "msg", "") or exc).strip()
    line = getattr(exc, "lineno", 0) or 0
    if not line and line_of is not None:
        line, found = line_of()
        text = found or text
    element = ""
    match = _ELEMENT.match(text)
    if match:
        element = f", element {match[1]}" + (f", attribute {match[2]}" if match[2] else "")
        text = text[match.end() :]
    text = _POSITION.sub("", _NAMESPACED.sub("", text))
    return f"{f'line {line}' if line else 'the file'}{element}: {text}"


#: ARTICLEs (and group maps) per document when a schema error is located.
_LOCATE_BATCH = 1000


def _bmecat_error_line(path: Path, schema: Any) -> tuple[int, str]:
    """The line (and message) of the first schema error: the file parsed again without the
    schema, its ARTICLEs moved in batches into small documents (the HEADER and the group
    system copied into each), each validated as a tree, whose errors know their source lines.
    (0, "") when no batch shows the error (one only the whole document has)."""
    from lxml import etree

    from tuiexport.exporters.bmecat_mapping import NAMESPACE

    def q(tag: str) -> str:
        return f"{{{NAMESPACE}}}{tag}"

    root: Any = None
    kept: dict[str, Any] = {}
    batch: list[Any] = []

    def check() -> tuple[int, str] | None:
        doc = etree.Element(root.tag, dict(root.attrib), nsmap=root.nsmap)
        if "HEADER" in kept:
            doc.append(copy.deepcopy(kept["HEADER"]))
        catalog = etree.SubElement(doc, q("T_NEW_CATALOG"))
        if "CATALOG_GROUP_SYSTEM" in kept:
            catalog.append(copy.deepcopy(kept["CATALOG_GROUP_SYSTEM"]))
        for item in batch:
            catalog.append(item)  # moved out of the file's tree: memory stays flat
        batch.clear()
        if schema.validate(doc):
            return None
        error = schema.error_log[0]
        return int(error.line), str(error.message)

    tags = [q(t) for t in ("BMECAT", "HEADER", "CATALOG_GROUP_SYSTEM", "ARTICLE")]
    tags.append(q("ARTICLE_TO_CATALOGGROUP_MAP"))
    try:
        for event, elem in etree.iterparse(
            str(path), events=("start", "end"), tag=tags, huge_tree=True
        ):
            if event == "start":
                root = elem if root is None else root
                continue
            name = elem.tag.rpartition("}")[2]
            if name in ("HEADER", "CATALOG_GROUP_SYSTEM"):
                kept[name] = elem
            elif name != "BMECAT":
                batch.append(elem)
                if len(batch) >= _LOCATE_BATCH and (found := check()):
                    return found
        return (check() if root is not None else None) or (0, "")
    except etree.LxmlError:
        return 0, ""


def _drop(elem: Any) -> None:
    """Free a counted element and its finished siblings (memory stays flat)."""
    elem.clear()
    parent = elem.getparent()
    if parent is not None:
        while elem.getprevious() is not None:
            del parent[0]


def _iter_count(
    path: Path,
    tag: str,
    schema: Any = None,
    *,
    top_level: bool = True,
    also: tuple[str, ...] = (),
    reader: IO[bytes] | None = None,
) -> tuple[int, str | None]:
    """Elements ``tag`` (with ``top_level``: only those right under the root) counted while
    lxml parses (and validates against ``schema``). Each is dropped once counted, and so are
    the elements ``also`` (the other long runs of siblings) and finished siblings: memory stays
    flat. Returns (count, first problem)."""
    from lxml import etree

    count = 0
    kwargs: dict[str, Any] = {"events": ("end",), "tag": [tag, *also], "huge_tree": True}
    if schema is not None:
        kwargs["schema"] = schema
    try:
        for _, elem in etree.iterparse(reader if reader is not None else str(path), **kwargs):
            if elem.tag == tag:
                parent = elem.getparent()
                if not top_level or (parent is not None and parent.getparent() is None):
                    count += 1
            _drop(elem)
    except etree.LxmlError as exc:
        locate = (lambda: _bmecat_error_line(path, schema)) if schema is not None else None
        return count, _xml_problem(exc, locate)
    return count, None


def bmecat(
    path: Path,
    profile: str,
    expected: Expected,
    options: ExportOptions,
    *,
    reader: IO[bytes] | None = None,
) -> list[str]:
    """The official BMEcat 1.2 schema, validated while parsing; ARTICLEs counted."""
    from tuiexport.exporters.bmecat_mapping import NAMESPACE
    from tuiexport.formats import bmecat12_schema

    # ARTICLEs sit in T_NEW_CATALOG, not right under the root.
    tag = f"{{{NAMESPACE}}}ARTICLE"
    maps = f"{{{NAMESPACE}}}ARTICLE_TO_CATALOGGROUP_MAP"  # one per article, after them
    count, problem = _iter_count(
        path, tag, bmecat12_schema(), top_level=False, also=(maps,), reader=reader
    )
    if problem:
        return [problem]
    if count != (n := _expected(expected)):
        return [_count_problem(count, n, "ARTICLE")]
    return []


def xml(
    path: Path,
    profile: str,
    expected: Expected,
    options: ExportOptions,
    *,
    reader: IO[bytes] | None = None,
) -> list[str]:
    """Well-formed XML; the root's ``product`` elements counted."""
    main = PROFILES[profile].main.name
    # The log's entries (one per product over the limit) are dropped as they end too.
    count, problem = _iter_count(path, main, also=("entry",), reader=reader)
    if problem:
        return [problem]
    if count != (n := _expected(expected)):
        return [_count_problem(count, n, f"<{main}> element")]
    return []


# --- JSON and JSON Lines ----------------------------------------------------------------------


class _JsonError(Exception):
    pass


def json_document(
    path: Path,
    profile: str,
    expected: Expected,
    options: ExportOptions,
    *,
    reader: IO[bytes] | None = None,
) -> list[str]:
    """A JSON text, tokenized line by line (no JSON token spans a line): a complete value on a
    line is decoded whole (each record), an opening bracket that does not close on its line is
    followed token by token. Memory: one line. Counts the values of the top-level main array."""
    main = PROFILES[profile].main.name
    raw = json.JSONDecoder().raw_decode
    # Each open container: [kind, state, its key in its parent, the key being read]; state: object "key" (after "{"),
    # "key!" (after ","), "colon", "value", "next"; array "first", "value", "next".
    stack: list[list[Any]] = []
    top_done = False
    count = 0
    lineno = 0

    def ended() -> None:
        nonlocal count, top_done
        if not stack:
            top_done = True
            return
        parent = stack[-1]
        parent[1] = "next"
        if len(stack) == 2 and parent[0] == "[" and parent[2] == main:
            count += 1

    with _opened(path, reader) as f:
        try:
            for lineno, data in enumerate(f, 1):  # noqa: B007 - lineno is read after the loop
                try:
                    line = data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise _JsonError(f"not UTF-8 ({exc.reason})") from None
                i, n = 0, len(line)
                while i < n:
                    ch = line[i]
                    if ch in " \t\r\n":
                        i += 1
                        continue
                    state = stack[-1][1] if stack else ("done" if top_done else "value")
                    if state == "done":
                        raise _JsonError(f"extra data after the document (column {i + 1})")
                    if state in ("key", "key!"):
                        if ch == "}" and state == "key":
                            stack.pop()
                            ended()
                            i += 1
                            continue
                        if ch != '"':
                            raise _JsonError(f"expected a key in quotes (column {i + 1})")
                        key, i = raw(line, i)
                        stack[-1][1], stack[-1][3] = "colon", key
                        continue
                    if state == "colon":
                        if ch != ":":
                            raise _JsonError(f"expected ':' (column {i + 1})")
                        stack[-1][1] = "value"
                        i += 1
                        continue
                    if state == "next":
                        kind = stack[-1][0]
                        if ch == ",":
                            stack[-1][1] = "key!" if kind == "{" else "value"
                            i += 1
                        elif ch == ("}" if kind == "{" else "]"):
                            stack.pop()
                            ended()
                            i += 1
                        else:
                            raise _JsonError(
                                f"expected ',' or '{'}' if kind == '{' else ']'}' (column {i + 1})"
                            )
                        continue
                    # A value (state "value", or "first" in an array).
                    if ch == "]" and state == "first":
                        stack.pop()
                        ended()
                        i += 1
                        continue
                    try:
                        _, i = raw(line, i)
                    except json.JSONDecodeError as exc:
                        if ch not in "{[":
                            raise _JsonError(f"{exc.msg} (column {exc.colno})") from None
                        key = stack[-1][3] if stack and stack[-1][0] == "{" else None
                        stack.append([ch, "key" if ch == "{" else "first", key, None])
                        i += 1
                        continue
                    ended()
            if stack or not top_done:
                raise _JsonError("the file ends before the document does (truncated)")
        except _JsonError as exc:
            where = f"line {lineno}"
            keys = [frame[2] for frame in stack if frame[2] is not None]
            if keys:
                where += f', in "{keys[-1]}"'
            return [f"{where}: {exc}"]
    if count != (n := _expected(expected)):
        return [_count_problem(count, n, f'record in "{main}"')]
    return []


#: How a delta's removal line ends (``{"puid":1,"removed":true}``, wrapped or not).
REMOVED = b'"removed":true}'

#: Bytes of a JSON Lines file read at once (its lines are then checked in one C-level pass).
BLOCK = 8 << 20


@functools.cache
def _line_type(main: str | None) -> Any:
    """What a JSON Lines line decodes into: an object whose values are parsed (msgspec checks
    every token of a skipped value as strictly as of a kept one) but not built; ``main`` kept
    as raw bytes, only to see whether the line has it."""
    fields = [] if main is None else [(main, msgspec.Raw, msgspec.UNSET)]
    return msgspec.defstruct("Line", fields)


def json_lines(
    path: Path,
    profile: str,
    expected: Expected,
    options: ExportOptions,
    *,
    reader: IO[bytes] | None = None,
) -> list[str]:
    """Every line one JSON object; products counted (wrapped as ``{"product": …}`` when the
    profile writes other entities too).

    Read in blocks of :data:`BLOCK` bytes: each block's UTF-8 checked at once, its lines decoded
    by msgspec without building their values. Only a block with a problem is gone through line
    by line, for the line numbers and reasons."""
    spec = PROFILES[profile]
    main = spec.main.name if spec.references else None
    decode = msgspec.json.Decoder(_line_type(main)).decode
    problems: list[str] = []
    count = 0
    first = 1  # the line number of the block's first line
    tail = b""
    with _opened(path, reader) as f:
        while block := f.read(BLOCK):
            if tail:
                block = tail + block
            lines = block.split(b"\n")
            tail = lines.pop()  # after the last newline: the start of a line, or b""
            try:
                # final=False: a character cut at the end of the block is finished in the next.
                codecs.utf_8_decode(block, "strict", False)
                records = list(map(decode, lines))
            except (UnicodeDecodeError, msgspec.DecodeError):
                bad = _bad_lines(lines, first, decode, MAX_PROBLEMS - len(problems))
                problems += bad
                if len(problems) >= MAX_PROBLEMS:
                    return problems
                # (none: the bad bytes are in the tail, which the next block checks)
                records = [] if bad else list(map(decode, lines))
            count += (
                len(records)
                if main is None
                else len(records) - list(map(_getter(main), records)).count(msgspec.UNSET)
            )
            if records:
                # A delta's removed puids (issue 12) are lines too, but no products. The key
                # cannot occur inside a string (its quotes would be escaped there).
                count -= block.count(REMOVED, 0, len(block) - len(tail))
            first += len(lines)
    if tail:
        problems.append(f"line {first}: the last line does not end (truncated)")
    if not problems and count != (n := _expected(expected)):
        problems.append(_count_problem(count, n, "product line"))
    return problems


@functools.cache
def _getter(name: str) -> Callable[[Any], Any]:
    return operator.attrgetter(name)


def _bad_lines(
    lines: list[bytes], first: int, decode: Callable[[bytes], Any], most: int
) -> list[str]:
    """The problems of a block, line by line (at most ``most``)."""
    problems: list[str] = []
    for lineno, line in enumerate(lines, first):
        try:
            line.decode("utf-8")
            decode(line)
        except UnicodeDecodeError as exc:
            problems.append(f"line {lineno}: not UTF-8 ({exc.reason})")
        except msgspec.DecodeError as exc:
            problems.append(f"line {lineno}: {exc}")
        else:
            continue
        if len(problems) >= most:
            break
    return problems


# --- CSV in a ZIP -----------------------------------------------------------------------------


#: Characters a CSV member is decoded in at once (TextIOWrapper's default is 8 KiB).
CSV_CHUNK = 1 << 20


def csv_zip(
    path: Path,
    profile: str,
    expected: Expected,
    options: ExportOptions,
    *,
    reader: IO[bytes] | None = None,
) -> list[str]:
    """Every ``.csv`` member read by Python's csv module (strict): each row has the header's
    number of fields; the main member has one row per product. Streams member by member.

    The rows' widths are counted in C (``Counter(map(len, reader))``); only a member with a
    problem is read again row by row, for the line numbers and reasons. With a ``reader`` (a
    follower's) the members are read as they are written (:func:`_zip_followed`); a file in
    which that finds anything wrong is read again from its central directory, as without one,
    for the same messages."""
    import zipfile  # here, not at the top: a --run of another format never imports it

    excel = options.csv_variant == "excel"
    delimiter = ";" if excel else ","
    main = f"{PROFILES[profile].main.name}.csv"
    if reader is not None:
        if _zip_followed(path, reader, main, delimiter, expected):
            return []
        while reader.read(CSV_CHUNK):  # to the end of the file, then as without a follower
            pass
    problems: list[str] = []
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith(".csv")]
            if main not in names:
                return [f"the ZIP has no {main}"]
            for name in names:
                rows = _csv_rows(zf, name, delimiter)
                if rows is None:
                    problems += _csv_problems(zf, name, delimiter, MAX_PROBLEMS - len(problems))
                elif name == main and not problems and rows != _expected(expected):
                    problems.append(f"{name}: " + _count_problem(rows, _expected(expected), "row"))
                if len(problems) >= MAX_PROBLEMS:
                    break
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        problems.append(f"not a readable ZIP: {exc}")
    return problems


#: A ZIP's local file header (after its signature), central directory header and data
#: descriptor signatures.
_LOCAL = struct.Struct("<HHHHHIIIHH")
_LOCAL_SIG, _CENTRAL_SIG, _DD_SIG = b"PK\x03\x04", b"PK\x01\x02", b"PK\x07\x08"


class _Pushback:
    """A reader of bytes that can be given back (what follows a member's compressed data)."""

    def __init__(self, reader: IO[bytes]):
        self.reader, self.buffer = reader, b""

    def some(self) -> bytes:
        data, self.buffer = self.buffer, b""
        return data or self.reader.read(CSV_CHUNK)

    def exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            more = self.reader.read(CSV_CHUNK)
            if not more:
                raise EOFError("the file ends inside a ZIP header")
            self.buffer += more
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data


class _Inflated(io.RawIOBase):
    """One deflated member as it comes, its CRC-32 and sizes counted."""

    def __init__(self, source: _Pushback):
        super().__init__()
        self.source, self.inflate = source, zlib.decompressobj(-15)
        self.crc = self.size = self.compressed = 0
        self.tail = b""

    def readable(self) -> bool:
        return True

    def ended(self) -> bool:
        return bool(self.inflate.eof)

    def readinto(self, buffer: Any) -> int:
        while not self.ended():
            data = self.tail or self.source.some()
            if not data:
                raise EOFError("the file ends inside a ZIP member")
            before = len(data)
            out = self.inflate.decompress(data, len(buffer))
            self.tail = self.inflate.unconsumed_tail
            self.compressed += before - len(self.tail) - len(self.inflate.unused_data)
            if self.ended():
                self.source.buffer = self.inflate.unused_data + self.source.buffer
            if out:
                buffer[: len(out)] = out
                self.crc = zlib.crc32(out, self.crc)
                self.size += len(out)
                return len(out)
        return 0


def _zip_followed(
    path: Path, reader: IO[bytes], main: str, delimiter: str, expected: Expected
) -> bool:
    """Whether the ZIP that ``reader`` follows passes :func:`csv_zip`'s checks, read member by
    member from its local headers as it is written (a streamed ZIP: deflated, each member's
    CRC-32 and sizes in a data descriptor after it), then its central directory checked against
    what was read. False at the first doubt (``csv_zip`` then reads the complete file again)."""
    import zipfile

    source = _Pushback(reader)
    seen: list[tuple[str, int, int]] = []
    rows_of_main: int | None = None
    try:
        while (signature := source.exactly(4)) == _LOCAL_SIG:
            _v, flags, method, _t, _d, _c, _cs, _us, n_name, n_extra = _LOCAL.unpack(
                source.exactly(_LOCAL.size)
            )
            name = source.exactly(n_name).decode("utf-8" if flags & 0x800 else "cp437")
            extra = source.exactly(n_extra)
            if method != zipfile.ZIP_DEFLATED or not flags & 0x08:
                return False  # not as the CSV writer streams its members
            member = _Inflated(source)
            if name.endswith(".csv"):
                rows = _csv_text_rows(_csv_text(io.BufferedReader(member, CSV_CHUNK)), delimiter)
                if rows is None:
                    return False
                if name == main:
                    rows_of_main = rows
            while member.read(CSV_CHUNK):
                pass
            zip64 = _has_zip64(extra)
            descriptor = source.exactly(24 if zip64 else 16)
            sig, crc, compressed, size = struct.unpack("<4sIQQ" if zip64 else "<4sIII", descriptor)
            if (sig, crc, compressed, size) != (
                _DD_SIG,
                member.crc,
                member.compressed,
                member.size,
            ):
                return False
            seen.append((name, crc, size))
        if signature != _CENTRAL_SIG:
            return False
        while source.some():  # to the end of the file: the central directory is complete
            pass
        with zipfile.ZipFile(path) as zf:
            listed = [(i.filename, i.CRC, i.file_size) for i in zf.infolist()]
    except (EOFError, OSError, ValueError, UnicodeDecodeError, zlib.error, zipfile.BadZipFile):
        return False
    return listed == seen and rows_of_main is not None and rows_of_main == _expected(expected)


def _has_zip64(extra: bytes) -> bool:
    """Whether a local header's extra field holds a ZIP64 record (then its data descriptor
    has 8-byte sizes)."""
    i = 0
    while i + 4 <= len(extra):
        kind, size = struct.unpack_from("<HH", extra, i)
        if kind == 1:
            return True
        i += 4 + size
    return False


def _csv_member(zf: Any, name: str) -> Any:
    return _csv_text(zf.open(name))


def _csv_text(member: IO[bytes]) -> Any:
    text = io.TextIOWrapper(member, encoding="utf-8-sig", newline="")
    text._CHUNK_SIZE = CSV_CHUNK  # type: ignore[attr-defined]  # CPython's read size, settable
    return text


def _csv_rows(zf: Any, name: str, delimiter: str) -> int | None:
    """The member's rows below its header when every row has the header's width; None when
    anything is wrong with it (then :func:`_csv_problems` says what)."""
    return _csv_text_rows(_csv_member(zf, name), delimiter)


def _csv_text_rows(member: Any, delimiter: str) -> int | None:
    with member as text:
        reader = csv.reader(text, delimiter=delimiter, strict=True)
        try:
            header = next(reader, None)
            if header is None:
                return None
            widths = collections.Counter(map(len, reader))
        except (csv.Error, UnicodeDecodeError):
            return None
    if set(widths) - {len(header)}:
        return None
    return widths[len(header)]


def _csv_problems(zf: Any, name: str, delimiter: str, most: int) -> list[str]:
    """A member's problems, row by row (at most ``most``)."""
    problems: list[str] = []
    with _csv_member(zf, name) as text:
        reader = csv.reader(text, delimiter=delimiter, strict=True)
        try:
            header = next(reader, None)
            if header is None:
                return [f"{name}: empty (no header)"]
            width = len(header)
            for row in reader:
                if len(row) != width:
                    problems.append(
                        f"{name} line {reader.line_num}: {len(row)} fields, the header has {width}"
                    )
                    if len(problems) >= most:
                        return problems
        except csv.Error as exc:
            problems.append(f"{name} line {reader.line_num}: {exc}")
        except UnicodeDecodeError as exc:
            problems.append(f"{name}: not UTF-8 ({exc.reason})")
    return problems


_SHEET_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PKG_REL_NS = "{http://schemas.openxmlformats.org/package/2006/relationships}"


def xlsx(
    path: Path,
    profile: str,
    expected: Expected,
    options: ExportOptions,
    *,
    reader: IO[bytes] | None = None,
) -> list[str]:
    """The workbook read back as a spreadsheet program would open it: a readable ZIP whose
    workbook names its sheets, every sheet well-formed XML, and the main element's sheets (the
    first one and its continuations ``name (2)``…) holding one row per product below their
    header rows. Streams sheet by sheet (lxml's iterparse, rows dropped as they end)."""
    import zipfile

    from lxml import etree

    main = PROFILES[profile].main.name
    problems: list[str] = []
    try:
        with zipfile.ZipFile(path) as zf:
            if zf.testzip() is not None:
                return ["a ZIP member of the workbook is damaged"]
            with zf.open("xl/workbook.xml") as f:
                book = etree.parse(f)
            with zf.open("xl/_rels/workbook.xml.rels") as f:
                rels = {
                    r.get("Id"): r.get("Target")
                    for r in etree.parse(f).iter(f"{_PKG_REL_NS}Relationship")
                }
            sheets = [
                (s.get("name"), rels.get(s.get(f"{_REL_NS}id")))
                for s in book.iter(f"{_SHEET_NS}sheet")
            ]
            if not any(name == main for name, _ in sheets):
                return [f"the workbook has no sheet {main}"]
            rows_of_main = 0
            for name, target in sheets:
                if not target:
                    problems.append(f"sheet {name}: no part in the workbook")
                    continue
                member = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
                rows = 0
                try:
                    with zf.open(member) as f:
                        for _, elem in etree.iterparse(f, tag=f"{_SHEET_NS}row"):
                            rows += 1
                            _drop(elem)
                except (KeyError, etree.XMLSyntaxError) as exc:
                    problems.append(f"sheet {name}: {exc}")
                    continue
                if name == main or (name or "").startswith(f"{main} ("):
                    rows_of_main += max(0, rows - 1)  # each sheet repeats the header
            if not problems and rows_of_main != _expected(expected):
                problems.append(
                    f"sheet {main}: " + _count_problem(rows_of_main, _expected(expected), "row")
                )
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, KeyError) as exc:
        problems.append(f"not a readable workbook: {exc}")
    return problems[:MAX_PROBLEMS]
