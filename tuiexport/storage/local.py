"""The local artifacts folder (the embedded default): a part file beside the target, fsync, and
an atomic rename into place on commit. A folder shared by every host (NFS) works the same way.

:class:`LocalWriter` is also how a run writes to an ``-o PATH`` outside the folder."""

from __future__ import annotations

import hashlib
import io
import os
import queue
import threading
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Self

from tuiexport.errors import NotFound
from tuiexport.storage.base import StorageError, StoredArtifact, check_key, range_reader

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer


#: Where a committed file keeps its SHA-256 (where the file system has user xattrs).
_XATTR = "user.tuiexport.sha256"


def _reason(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)


class LocalWriter(io.RawIOBase):
    """Writes a part file beside the target (``.<name>.part``, or the ``part`` path given);
    :meth:`commit` fsyncs it, checks it and renames it into place (atomic, on NFS too).

    Writes are gathered into pieces of :attr:`BUFFER` bytes (a writer's whole chunk of about a
    megabyte goes out as it is) and hashed on a second thread (hashlib releases the GIL), so
    the SHA-256 costs no second pass over the file. Not seekable, so a ZIP writer streams."""

    BUFFER = 1 << 20

    def __init__(self, target: Path, *, part: Path | None = None, key: str | None = None):
        super().__init__()
        self.key = key if key is not None else target.name
        #: Where the file goes on commit (the caller may point it elsewhere before: a held
        #: run's file beside an ``-o`` path).
        self.target = target
        self.part = part if part is not None else target.with_name(f".{target.name}.part")
        self._digest = hashlib.sha256()
        self._buffer = bytearray()
        self._size = 0
        self._sealed: StoredArtifact | None = None
        self._result: StoredArtifact | None = None
        try:
            self.part.parent.mkdir(parents=True, exist_ok=True)
            self._file: io.FileIO | None = io.FileIO(self.part, "wb")
        except OSError as exc:
            raise StorageError(f"Cannot write {self.part}: {_reason(exc)}.") from None
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._hasher: threading.Thread | None = threading.Thread(
            target=self._hash, name="artifact-sha256", daemon=True
        )
        self._hasher.start()

    def _hash(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._digest.update(chunk)

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._size

    def write(self, data: ReadableBuffer) -> int:
        if self._file is None or self._sealed is not None:
            raise ValueError("write to a committed or aborted artifact")
        if type(data) is bytes and len(data) >= self.BUFFER:
            # A writer's whole chunk (JSON, XML: about a megabyte): out as it is, no two copies.
            self._drain()
            self._out(data)
            self._size += len(data)
            return len(data)
        before = len(self._buffer)
        self._buffer += data
        written = len(self._buffer) - before
        self._size += written
        if len(self._buffer) >= self.BUFFER:
            self._drain()
        return written

    def _drain(self) -> None:
        if self._buffer:
            chunk = bytes(self._buffer)
            self._buffer.clear()
            self._out(chunk)

    def _out(self, chunk: bytes) -> None:
        assert self._file is not None
        view = memoryview(chunk)
        while view:  # a raw write may be short
            view = view[self._file.write(view) or 0 :]
        self._queue.put(chunk)

    def flush(self) -> None:
        """Everything written so far is in the part file (another process may read it)."""
        if self._file is not None:
            self._drain()

    def _stop_hasher(self) -> None:
        if self._hasher is not None:
            self._queue.put(None)
            self._hasher.join()
            self._hasher = None

    def seal(self) -> StoredArtifact:
        """The part file complete and on disk (fsync), with its size and SHA-256, not yet at
        its target: read it back (validation) or record it before :meth:`commit` publishes it."""
        if self._sealed is not None:
            return self._sealed
        if self._file is None:
            raise ValueError("commit of an aborted artifact")
        try:
            self._drain()
            self._stop_hasher()
            os.fsync(self._file.fileno())
            on_disk = os.fstat(self._file.fileno()).st_size
        except OSError as exc:
            self.abort()
            raise StorageError(f"Cannot write {self.part}: {_reason(exc)}.") from None
        if on_disk != self._size:
            self.abort()
            raise StorageError(
                f"The file {self.part} holds {on_disk:,} bytes, not the {self._size:,} "
                "written; the disk may be failing."
            )
        self._sealed = StoredArtifact(self.key, self._size, self._digest.hexdigest())
        return self._sealed

    def commit(self) -> StoredArtifact:
        if self._result is not None:
            return self._result
        sealed = self.seal()
        assert self._file is not None
        try:
            self._file.close()
            self._file = None
            with suppress(OSError, AttributeError):  # a file system without user xattrs
                os.setxattr(self.part, _XATTR, sealed.sha256.encode())
            os.replace(self.part, self.target)
            _fsync_dir(self.target.parent)
        except OSError as exc:
            self.abort()
            raise StorageError(f"Cannot write {self.target}: {_reason(exc)}.") from None
        self._result = sealed
        return sealed

    def abort(self) -> None:
        if self._result is not None:
            return
        self._buffer.clear()
        self._stop_hasher()
        if self._file is not None:
            self._file.close()
            self._file = None
        with suppress(FileNotFoundError):
            self.part.unlink()

    def close(self) -> None:
        self.abort()  # closing without a commit throws the part away
        super().close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class LocalStore:
    """Files under ``root`` (the ``artifacts_dir`` setting), one per key."""

    def __init__(self, root: Path):
        self.root = root
        self.location = str(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def create(self, key: str) -> LocalWriter:
        return LocalWriter(self._path(key), key=key)

    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        path = self._path(key)
        try:
            f = open(path, "rb")  # noqa: SIM115 - the caller closes the reader, which closes it
        except FileNotFoundError:
            raise NotFound(f"There is no file {key} in {self.location}.") from None
        except OSError as exc:
            raise StorageError(f"Cannot read {path}: {_reason(exc)}.") from None
        if start:
            f.seek(start)
        if start == 0 and end is None:
            return f
        return range_reader(f, None if end is None else max(end - start, 0))

    def stat(self, key: str) -> StoredArtifact | None:
        """Size and SHA-256: the digest recorded at commit (an extended attribute) where the
        file system keeps one, else read from the bytes."""
        path = self._path(key)
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                with suppress(OSError, AttributeError):
                    return StoredArtifact(key, size, os.getxattr(f.fileno(), _XATTR).decode())
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"Cannot read {path}: {_reason(exc)}.") from None
        return StoredArtifact(key, size, digest.hexdigest())

    def delete(self, key: str) -> bool:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StorageError(f"Cannot delete {path}: {_reason(exc)}.") from None
        return True

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def presigned_url(
        self, key: str, expires: int = 300, *, disposition: str | None = None
    ) -> str | None:
        return None

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"Cannot create the folder {self.root}: {_reason(exc)}.") from None
        if not os.access(self.root, os.W_OK):
            raise StorageError(f"The folder {self.root} is not writable.")

    def discard_partial(self, key: str) -> int:
        target = self._path(key)
        try:
            target.with_name(f".{target.name}.part").unlink()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise StorageError(
                f"Cannot delete the part file of {target}: {_reason(exc)}."
            ) from None
        return 1


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
