"""Artifacts in an S3-compatible object store, through boto3 (imported only with this module).

A writer streams the file as a multipart upload: it fills one part buffer while the parts before
it upload on two threads, so memory stays at a few parts whatever the file's size. Each
part carries its MD5 (the store refuses a part that arrived damaged); the SHA-256 of the whole
file is computed on the way and stored as the object's ``sha256`` metadata. Leaving the writer
without a commit aborts the upload: no object and no pending upload stay behind.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, Self

import boto3
import botocore.config
import botocore.exceptions

from tuiexport.errors import NotFound
from tuiexport.storage.base import (
    S3Location,
    StorageError,
    StoredArtifact,
    check_key,
    parse_s3_url,
    range_reader,
)

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

#: The size of one part (S3 wants at least 5 MiB for all parts but the last).
PART_SIZE = 8 << 20
#: Parts uploading at once while the next one fills (memory: about in_flight + 2 parts).
IN_FLIGHT = 2
#: Above this size S3 cannot copy an object in one request: the digest goes into a tag instead.
_COPY_LIMIT = 5 << 30
#: Error codes that mean "these credentials may not do this".
_REFUSED = {
    "403",
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
}


class S3Store:
    """Objects under ``s3://bucket/prefix``; the key of a run's file is ``prefix/<key>``."""

    def __init__(
        self,
        location: S3Location,
        client: S3Client,
        *,
        part_size: int = PART_SIZE,
        in_flight: int = IN_FLIGHT,
    ):
        if part_size < 5 << 20:
            raise ValueError("S3 parts are at least 5 MiB")
        self.in_flight = max(in_flight, 1)
        self.where = location
        self.client = client
        self.part_size = part_size
        self.location = location.url
        self.endpoint = client.meta.endpoint_url

    @classmethod
    def from_url(
        cls, url: str, *, part_size: int = PART_SIZE, in_flight: int = IN_FLIGHT
    ) -> S3Store:
        """The store an ``artifacts_url`` names. Endpoint, region and credentials come from the
        URL's options where given, else the way boto3 finds them: ``AWS_*`` environment
        variables, ``~/.aws/config`` and ``~/.aws/credentials`` (``AWS_PROFILE``)."""
        where = parse_s3_url(url)
        try:
            session = boto3.session.Session(profile_name=where.profile or None)
        except botocore.exceptions.ProfileNotFound:
            raise StorageError(
                f"The AWS profile {where.profile!r} of the artifacts URL is not in ~/.aws/config "
                "or ~/.aws/credentials."
            ) from None
        extra: dict[str, Any] = {}
        if where.addressing_style:
            extra["s3"] = {"addressing_style": where.addressing_style}
        config = botocore.config.Config(
            # Signature version 4 for presigned URLs too (boto3 still signs those with the
            # deprecated version 2 unless told).
            signature_version="s3v4",
            # Only the checksums S3 requires: S3-compatible stores (Ceph, older MinIO) refuse
            # the newer default ones. Each part still carries its MD5.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": 4, "mode": "standard"},
            connect_timeout=10,
            read_timeout=120,
            **extra,
        )
        client = session.client(
            "s3",
            endpoint_url=where.endpoint or None,
            region_name=where.region or None,
            config=config,
        )
        return cls(where, client, part_size=part_size, in_flight=in_flight)

    # --- keys and errors ------------------------------------------------------------------

    def object_key(self, key: str) -> str:
        check_key(key)
        return f"{self.where.prefix}/{key}" if self.where.prefix else key

    def error(self, exc: Exception, action: str) -> StorageError:
        """One sentence for a failure of boto3 or of the store."""
        where = f"the object store at {self.endpoint}"
        if isinstance(exc, botocore.exceptions.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code == "NoSuchBucket":
                return StorageError(
                    f"The bucket {self.where.bucket!r} does not exist at {self.endpoint}; "
                    "create it, or correct artifacts_url."
                )
            if code in _REFUSED:
                if code.isdigit():  # a HEAD: a status and no body
                    code = f"HTTP {code}"
                return StorageError(
                    f"The object store at {self.endpoint} refused the credentials ({code}) to "
                    f"{action}; check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                    "~/.aws/credentials, and the bucket's permissions."
                )
            message = str(error.get("Message", "")).rstrip(".") or "no reason given"
            return StorageError(f"Could not {action} in {where}: {code} ({message}).")
        if isinstance(exc, botocore.exceptions.NoCredentialsError):
            return StorageError(
                f"No credentials for {where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or add them to ~/.aws/credentials."
            )
        if isinstance(
            exc,
            botocore.exceptions.EndpointConnectionError | botocore.exceptions.ConnectionError,
        ):
            return StorageError(f"Cannot reach {where} to {action}: {exc}.")
        return StorageError(f"Could not {action} in {where}: {type(exc).__name__}: {exc}.")

    def _missing_bucket_or(self, exc: Exception, action: str) -> StorageError | None:
        """For a HEAD's bare 404: ``None`` if only the object is missing, else the error."""
        if not isinstance(exc, botocore.exceptions.ClientError):
            return self.error(exc, action)
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code not in ("404", "NoSuchKey", "NotFound"):
            return self.error(exc, action)
        self.check()  # raises for a missing bucket
        return None

    # --- the protocol ---------------------------------------------------------------------

    def create(self, key: str) -> S3Writer:
        return S3Writer(self, check_key(key))

    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        if end is not None and end <= start:
            return io.BytesIO(b"")
        args: dict[str, Any] = {"Bucket": self.where.bucket, "Key": self.object_key(key)}
        if start or end is not None:
            args["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            answer = self.client.get_object(**args)
        except Exception as exc:  # noqa: BLE001 - boto3's and the store's errors, as a sentence
            if isinstance(exc, botocore.exceptions.ClientError):
                code = exc.response.get("Error", {}).get("Code")
                if code == "NoSuchKey":
                    raise NotFound(f"There is no file {key} in {self.location}.") from None
                if code == "InvalidRange":  # starts at or past the end
                    return io.BytesIO(b"")
            raise self.error(exc, f"read {key}") from None
        return range_reader(answer["Body"], None)

    def stat(self, key: str) -> StoredArtifact | None:
        name = self.object_key(key)
        try:
            head = self.client.head_object(Bucket=self.where.bucket, Key=name)
        except Exception as exc:  # noqa: BLE001 - boto3's and the store's errors, as a sentence
            error = self._missing_bucket_or(exc, f"look up {key}")
            if error is None:
                return None
            raise error from None
        digest = head.get("Metadata", {}).get("sha256", "")
        if not digest:  # over 5 GiB: kept in a tag (see S3Writer.commit)
            try:
                tags = self.client.get_object_tagging(Bucket=self.where.bucket, Key=name)
            except Exception as exc:  # noqa: BLE001 - as above
                raise self.error(exc, f"read the tags of {key}") from None
            digest = next((t["Value"] for t in tags["TagSet"] if t["Key"] == "sha256"), "")
        return StoredArtifact(key, head["ContentLength"], digest)

    def delete(self, key: str) -> bool:
        # S3 answers a DELETE of a missing key with success: ask first, for the return value.
        found = self.stat(key) is not None
        try:
            self.client.delete_object(Bucket=self.where.bucket, Key=self.object_key(key))
        except Exception as exc:  # noqa: BLE001 - as above
            raise self.error(exc, f"delete {key}") from None
        return found

    def local_path(self, key: str) -> None:
        return None

    def presigned_url(self, key: str, expires: int = 300, *, disposition: str | None = None) -> str:
        params: dict[str, str] = {"Bucket": self.where.bucket, "Key": self.object_key(key)}
        if disposition:
            params["ResponseContentDisposition"] = disposition
        try:
            return self.client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=expires
            )
        except Exception as exc:  # noqa: BLE001 - e.g. no credentials to sign with
            raise self.error(exc, f"sign a URL for {key}") from None

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.where.bucket)
        except Exception as exc:  # noqa: BLE001 - as above
            if isinstance(exc, botocore.exceptions.ClientError) and str(
                exc.response.get("Error", {}).get("Code")
            ) in ("404", "NoSuchBucket"):
                raise self.error(
                    botocore.exceptions.ClientError(
                        {"Error": {"Code": "NoSuchBucket"}}, "HeadBucket"
                    ),
                    "open the bucket",
                ) from None
            raise self.error(exc, f"open the bucket {self.where.bucket!r}") from None

    def discard_partial(self, key: str) -> int:
        name = self.object_key(key)
        try:
            pending = self.client.list_multipart_uploads(Bucket=self.where.bucket, Prefix=name)
            uploads = [u for u in pending.get("Uploads", []) if u.get("Key") == name]
            for upload in uploads:
                self.client.abort_multipart_upload(
                    Bucket=self.where.bucket, Key=name, UploadId=upload["UploadId"]
                )
        except Exception as exc:  # noqa: BLE001 - as above
            raise self.error(exc, f"abort the unfinished uploads of {key}") from None
        return len(uploads)


class S3Writer(io.RawIOBase):
    """One run's file on its way into the store (see the module's docstring)."""

    def __init__(self, store: S3Store, key: str):
        super().__init__()
        self.store = store
        self.key = key
        self.object_key = store.object_key(key)
        #: The multipart upload once the first part went out (a caller may record it, so that
        #: another process can abort it if this one dies: see S3Store.discard_partial).
        self.upload_id: str | None = None
        self._buffer = bytearray()
        self._size = 0
        self._sha256 = hashlib.sha256()
        self._number = 0
        self._parts: list[CompletedPartTypeDef] = []
        self._uploader: ThreadPoolExecutor | None = None
        self._pending: deque[Future[None]] = deque()
        self._result: StoredArtifact | None = None
        self._done = False

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._size

    def write(self, data: ReadableBuffer) -> int:
        if self._done:
            raise ValueError("write to a committed or aborted artifact")
        before = len(self._buffer)
        self._buffer += data
        written = len(self._buffer) - before
        self._size += written
        if len(self._buffer) >= self.store.part_size:
            self._ship()
        return written

    def flush(self) -> None:
        pass  # parts go out when they are full; the rest on commit

    # --- parts ----------------------------------------------------------------------------

    def _wait(self, room: int = 0) -> None:
        """Wait until at most ``room`` parts are in flight; a failed part becomes a
        StorageError (after an abort)."""
        while len(self._pending) > room:
            try:
                self._pending.popleft().result()
            except Exception as exc:  # noqa: BLE001 - boto3's and the store's errors
                self.abort()
                raise self.store.error(exc, f"upload {self.key}") from None

    def _ship(self) -> None:
        """Hand the full buffer to an uploader thread, once there is room in flight."""
        data = bytes(self._buffer)
        self._buffer = bytearray()
        self._sha256.update(data)  # here, in order (hashlib lets the uploads run meanwhile)
        self._wait(self.store.in_flight - 1)
        if self.upload_id is None:
            try:
                started = self.store.client.create_multipart_upload(
                    Bucket=self.store.where.bucket, Key=self.object_key
                )
            except Exception as exc:  # noqa: BLE001 - as above
                self.abort()
                raise self.store.error(exc, f"start the upload of {self.key}") from None
            self.upload_id = started["UploadId"]
            self._uploader = ThreadPoolExecutor(
                self.store.in_flight, thread_name_prefix="s3-upload"
            )
        assert self._uploader is not None
        self._number += 1
        self._pending.append(self._uploader.submit(self._upload, self._number, data))

    def _upload(self, number: int, data: bytes) -> None:
        """On an uploader thread."""
        assert self.upload_id is not None
        answer = self.store.client.upload_part(
            Bucket=self.store.where.bucket,
            Key=self.object_key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=data,
            ContentMD5=_md5(data),
        )
        self._parts.append({"ETag": answer["ETag"], "PartNumber": number})  # list.append: atomic

    # --- the end --------------------------------------------------------------------------

    def commit(self) -> StoredArtifact:
        if self._result is not None:
            return self._result
        if self._done:
            raise ValueError("commit of an aborted artifact")
        client, bucket, name = self.store.client, self.store.where.bucket, self.object_key
        if self.upload_id is None:  # smaller than one part: one PUT, digest and all
            data = bytes(self._buffer)
            self._buffer = bytearray()
            self._sha256.update(data)
            digest = self._sha256.hexdigest()
            try:
                client.put_object(
                    Bucket=bucket,
                    Key=name,
                    Body=data,
                    ContentMD5=_md5(data),
                    Metadata={"sha256": digest},
                )
            except Exception as exc:  # noqa: BLE001 - as above
                self._done = True
                raise self.store.error(exc, f"upload {self.key}") from None
        else:
            if self._buffer:
                self._ship()  # the last part (S3 allows it to be small)
            self._wait()
            digest = self._sha256.hexdigest()
            try:
                done = client.complete_multipart_upload(
                    Bucket=bucket,
                    Key=name,
                    UploadId=self.upload_id,
                    MultipartUpload={"Parts": sorted(self._parts, key=lambda p: p["PartNumber"])},
                )
                if self._size <= _COPY_LIMIT:
                    # Metadata is fixed when an upload starts, before the digest is known: a
                    # copy onto itself sets it (a server-side copy; Ceph shares the data).
                    client.copy_object(
                        Bucket=bucket,
                        Key=name,
                        CopySource={"Bucket": bucket, "Key": name},
                        CopySourceIfMatch=done["ETag"],
                        Metadata={"sha256": digest},
                        MetadataDirective="REPLACE",
                    )
                else:
                    client.put_object_tagging(
                        Bucket=bucket,
                        Key=name,
                        Tagging={"TagSet": [{"Key": "sha256", "Value": digest}]},
                    )
            except Exception as exc:  # noqa: BLE001 - as above
                self.abort()
                self._delete_quietly()
                raise self.store.error(exc, f"complete the upload of {self.key}") from None
            self._finish_uploader()
        self._done = True
        stored = self.store.stat(self.key)
        if stored is None or stored.size != self._size or stored.sha256 != digest:
            self._delete_quietly()
            found = "nothing" if stored is None else f"{stored.size:,} bytes"
            if stored is not None and stored.size == self._size:
                found = f"bytes with another SHA-256 ({stored.sha256 or 'none'})"
            raise StorageError(
                f"The object store at {self.store.endpoint} holds {found} for {self.key}, not "
                f"the {self._size:,} bytes written; the upload was discarded."
            )
        self._result = stored
        return stored

    def abort(self) -> None:
        """Stop: wait for the part in flight, then abort the multipart upload."""
        if self._done:
            return
        self._done = True
        self._buffer = bytearray()
        while self._pending:
            # Aborting anyway; the caller has the error that brought it here.
            with suppress(Exception):
                self._pending.popleft().result()
        self._finish_uploader()
        if self.upload_id is not None:
            # If the store cannot be reached now, S3Store.discard_partial or the bucket's
            # lifecycle rule (AbortIncompleteMultipartUpload) ends it later.
            with suppress(Exception):
                self.store.client.abort_multipart_upload(
                    Bucket=self.store.where.bucket, Key=self.object_key, UploadId=self.upload_id
                )

    def _finish_uploader(self) -> None:
        if self._uploader is not None:
            self._uploader.shutdown(wait=True)
            self._uploader = None

    def _delete_quietly(self) -> None:
        # Best effort: the object was never published and its key is never used again.
        with suppress(Exception):
            self.store.client.delete_object(Bucket=self.store.where.bucket, Key=self.object_key)

    def close(self) -> None:
        self.abort()  # closing without a commit throws the upload away
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


def _md5(data: bytes) -> str:
    # Not for security: S3's Content-MD5 lets the store refuse a part that arrived damaged.
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
