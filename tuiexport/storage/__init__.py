"""Where the files of runs are kept: the local artifacts folder, or an S3-compatible object store.

One small protocol (:class:`ArtifactStore`) with two implementations. A run streams its file
into :meth:`ArtifactStore.create`'s writer while it is produced; :meth:`ArtifactWriter.commit`
completes and verifies it and returns its key, size and SHA-256, and the caller publishes it by
switching a database pointer (there is no "rename" in S3: each run's key is unique). Leaving the
writer without a commit (an error, a cancel) aborts it: nothing is left behind.

boto3 is imported only when an ``s3://`` store is opened: ``tuiexport --run`` on the local folder
never loads it.
"""

from __future__ import annotations

from pathlib import Path

from tuiexport.storage.base import (
    ArtifactStore,
    ArtifactWriter,
    SeekableReader,
    StorageError,
    StoredArtifact,
    check_key,
)
from tuiexport.storage.local import LocalStore

__all__ = [
    "ArtifactStore",
    "ArtifactWriter",
    "LocalStore",
    "SeekableReader",
    "StorageError",
    "StoredArtifact",
    "check_key",
    "open_store",
]


def open_store(url: str, *, local_root: Path | None = None) -> ArtifactStore:
    """The store that ``artifacts_url`` names: ``s3://bucket/prefix`` (boto3, loaded now), or
    empty for the local folder ``local_root`` (the ``artifacts_dir`` setting)."""
    if url.startswith("s3://"):
        try:
            from tuiexport.storage.s3 import S3Store  # boto3 only here
        except ModuleNotFoundError as exc:
            if exc.name not in ("boto3", "botocore"):
                raise
            raise StorageError(
                "An s3:// artifacts URL needs boto3: pip install 'tuiexport[s3]' (or boto3)."
            ) from None
        return S3Store.from_url(url)
    if url:
        raise StorageError(
            f"The artifacts URL {url!r} is not supported; use s3://bucket/prefix, "
            "or leave it empty for the local folder."
        )
    if local_root is None:
        raise StorageError("The local artifacts store needs a folder.")
    return LocalStore(local_root)
