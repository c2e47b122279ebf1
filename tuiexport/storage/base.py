"""The protocol both stores implement, the record of a stored file, and the store's error."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Protocol, Self
from urllib.parse import parse_qsl, urlsplit

from tuiexport.errors import UserError

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer


class StorageError(UserError):
    """The store cannot be used (unreachable, refused credentials, missing bucket, full disk).

    Not the user's input but the installation: exit 1, and 503 from the share server."""

    exit_code = 1
    http_status = 503


@dataclass(frozen=True)
class StoredArtifact:
    """A complete file in a store: what the caller records before it publishes the key."""

    key: str
    size: int
    sha256: str


#: Keys are relative paths of plain names: ``export-id/Shop-feed_20260101-120000_LOGID.xml``.
_KEY = re.compile(r"[\w.-]+(/[\w.-]+)*")


def check_key(key: str) -> str:
    """``key`` if it is a relative path of plain names (letters, digits, ``._-``, no ``..``)."""
    parts = key.split("/")
    if not _KEY.fullmatch(key) or any(p in (".", "..") or p.startswith(".") for p in parts):
        raise ValueError(f"not a valid artifact key: {key!r}")
    return key


class ArtifactWriter(Protocol):
    """A binary file that a run's writer writes into (``write``, ``tell``, ``flush``; not
    seekable). Use it as a context manager: leaving it without :meth:`commit` aborts it."""

    key: str

    def write(self, data: ReadableBuffer, /) -> int: ...

    def tell(self) -> int: ...

    def flush(self) -> None: ...

    def seekable(self) -> bool: ...

    def writable(self) -> bool: ...

    def commit(self) -> StoredArtifact:
        """Complete the file, check that the store holds every byte, and return its record."""
        ...

    def abort(self) -> None:
        """Throw away what was written (idempotent; a no-op after :meth:`commit`)."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class ArtifactStore(Protocol):
    """Where the files of runs are kept. Keys are unique per run (see :func:`check_key`)."""

    #: Where it is, for messages: the folder, or ``s3://bucket/prefix``.
    location: str

    def create(self, key: str) -> ArtifactWriter:
        """A writer for a new file at ``key``; nothing is visible at ``key`` before commit."""
        ...

    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        """The bytes ``start`` to ``end`` (exclusive; ``None``: to the end) of a stored file,
        for a whole download or a 206 answer. Raises :class:`tuiexport.errors.NotFound`."""
        ...

    def stat(self, key: str) -> StoredArtifact | None:
        """Size and SHA-256 of a stored file; ``None`` if there is none at ``key``."""
        ...

    def delete(self, key: str) -> bool:
        """Remove a stored file (retention). ``False`` if there was none."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The file on this host's disk (so a server can sendfile it), or ``None``."""
        ...

    def presigned_url(
        self, key: str, expires: int = 300, *, disposition: str | None = None
    ) -> str | None:
        """A URL that fetches the file without credentials for ``expires`` seconds (answered
        with ``Content-Disposition: disposition`` if given), where the store has such URLs
        (S3); ``None`` otherwise."""
        ...

    def check(self) -> None:
        """Raise :class:`StorageError` with one sentence unless the store can be written."""
        ...

    def discard_partial(self, key: str) -> int:
        """Throw away what a writer of ``key`` left when its process died mid-run (a part file,
        an incomplete multipart upload). Returns how many were found."""
        ...


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...

    def close(self) -> None: ...


def range_reader(inner: Readable, length: int | None, buffer_size: int = 1 << 20) -> BinaryIO:
    """A buffered file of at most ``length`` bytes of ``inner`` (read from where it is)."""
    return io.BufferedReader(_RangeReader(inner, length), buffer_size)


class _RangeReader(io.RawIOBase):
    """Reads at most ``length`` bytes from ``inner`` (a file at the range's start), then EOF."""

    def __init__(self, inner: Readable, length: int | None):
        super().__init__()
        self._inner = inner
        self._left = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        if self._left is not None:
            view = view[: self._left]
        if not view:
            return 0
        data = self._inner.read(len(view))
        view[: len(data)] = data
        if self._left is not None:
            self._left -= len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()


@dataclass(frozen=True)
class S3Location:
    """What ``artifacts_url = "s3://bucket/prefix?endpoint=…&region=…&profile=…"`` names."""

    bucket: str
    prefix: str
    endpoint: str = ""
    region: str = ""
    profile: str = ""
    addressing_style: str = ""

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_OPTIONS = ("endpoint", "region", "profile", "addressing_style")


def parse_s3_url(url: str) -> S3Location:
    """The bucket, key prefix and options of an ``s3://`` URL; a sentence if it is not one."""
    split = urlsplit(url)
    if split.scheme != "s3" or not _BUCKET.fullmatch(split.netloc):
        raise StorageError(
            f"The artifacts URL {url!r} is not s3://bucket/prefix with a valid bucket name "
            "(3 to 63 lower-case letters, digits, dots and hyphens)."
        )
    prefix = split.path.strip("/")
    if prefix:
        try:
            check_key(prefix)
        except ValueError:
            raise StorageError(
                f"The prefix {prefix!r} of the artifacts URL may hold only letters, digits, "
                "'.', '_', '-' and '/'."
            ) from None
    options: dict[str, str] = {}
    for name, value in parse_qsl(split.query, keep_blank_values=True):
        if name not in _OPTIONS:
            raise StorageError(
                f"The artifacts URL has an unknown option {name!r}; known: {', '.join(_OPTIONS)}."
            )
        options[name] = value
    style = options.get("addressing_style", "")
    if style not in ("", "auto", "path", "virtual"):
        raise StorageError(
            f"The artifacts URL's addressing_style is {style!r}; use path, virtual or auto."
        )
    endpoint = options.get("endpoint", "")
    if endpoint and urlsplit(endpoint).scheme not in ("http", "https"):
        raise StorageError(
            f"The artifacts URL's endpoint {endpoint!r} is not an http:// or https:// URL."
        )
    return S3Location(split.netloc, prefix, **options)


class SeekableReader(io.RawIOBase):
    """A stored file as a seekable, read-only file of known ``size``: reading streams from
    ``opener(position)`` (a ranged read of the store), a seek elsewhere opens a new one. What a
    server's file answer needs from an object in S3: a 206 seeks, the event loop's copy reads."""

    def __init__(self, opener: Callable[[int], BinaryIO], size: int):
        super().__init__()
        self._opener = opener
        self._size = size
        self._position = 0
        self._stream: BinaryIO | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        position = max(base + offset, 0)
        if position != self._position and self._stream is not None:
            self._stream.close()
            self._stream = None
        self._position = position
        return position

    def start(self, position: int) -> None:
        """Seek to ``position`` and open the store's read there now (raising what it raises:
        NotFound for a missing object, StorageError for an unreachable store)."""
        self.seek(position)
        if self._stream is None and position < self._size:
            self._stream = self._opener(position)

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")[: max(self._size - self._position, 0)]
        filled = 0
        while filled < len(view):
            if self._stream is None:
                self._stream = self._opener(self._position)
            data = self._stream.read(len(view) - filled)
            if not data:
                break
            view[filled : filled + len(data)] = data
            filled += len(data)
            self._position += len(data)
        return filled

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        super().close()
