"""The artifact stores: the local folder and S3 (a real radosgw on loopback, tests/s3_cluster.py).

The same protocol tests run against both; the S3-only ones cover what only an object store has
(multipart uploads, credentials, buckets, presigned URLs)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import tracemalloc
import urllib.request
import uuid
import zipfile
from pathlib import Path

import pytest

from tuiexport import config, service, setup
from tuiexport import db as dbmod
from tuiexport.errors import NotFound
from tuiexport.selection import Criteria
from tuiexport.storage import LocalStore, StorageError, open_store
from tuiexport.storage.base import parse_s3_url

MiB = 1 << 20
BUCKET = "tuiexport-tests"


def _pattern(size: int, seed: int = 1) -> bytes:
    """``size`` bytes that are not all alike (so a wrong range or part order shows)."""
    block = hashlib.sha256(str(seed).encode()).digest() * (MiB // 32)
    return (block * (size // len(block) + 1))[:size]


def _chunks(data: bytes, size: int = 64 * 1024):
    view = memoryview(data)
    for start in range(0, len(data), size):
        yield view[start : start + size]


# --- the stores -------------------------------------------------------------------------------


@pytest.fixture
def aws_env(s3_server, monkeypatch, tmp_path):
    """The store's endpoint and keys as a boto3 user sets them; no ~/.aws of this machine."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return s3_server


@pytest.fixture
def s3_client(aws_env):
    import boto3

    client = boto3.client("s3")
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def s3_store(s3_client):
    """An S3 store under a prefix of its own, with the smallest parts S3 allows."""
    pytest.importorskip("boto3", reason="boto3 is not installed (pip install 'tuiexport[s3]')")
    from tuiexport.storage.s3 import S3Store

    return S3Store.from_url(f"s3://{BUCKET}/t-{uuid.uuid4().hex[:12]}", part_size=5 * MiB)


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalStore(tmp_path / "artifacts")
    return request.getfixturevalue("s3_store")


def _leftovers(store) -> list[str]:
    """Part files (local) or pending multipart uploads (S3) under the store."""
    if isinstance(store, LocalStore):
        if not store.root.exists():
            return []
        return [p.name for p in store.root.rglob("*") if p.name.endswith(".part")]
    pending = store.client.list_multipart_uploads(Bucket=BUCKET, Prefix=store.where.prefix)
    return [u["Key"] for u in pending.get("Uploads", [])]


# --- the protocol, on both stores -----------------------------------------------------------


def test_a_streamed_file_appears_only_when_committed(store):
    data = _pattern(12 * MiB + 12345)  # more than two parts of 5 MiB
    with store.create("exp-1/feed_RUN1.xml") as out:
        for chunk in _chunks(data):
            out.write(chunk)
        assert out.tell() == len(data)
        assert store.stat("exp-1/feed_RUN1.xml") is None  # nothing visible before the commit
        stored = out.commit()
    assert (stored.key, stored.size) == ("exp-1/feed_RUN1.xml", len(data))
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert store.stat("exp-1/feed_RUN1.xml") == stored
    with store.open("exp-1/feed_RUN1.xml") as f:
        assert f.read() == data
    assert _leftovers(store) == []


def test_a_small_and_an_empty_file(store):
    for key, data in (("e/small.csv", b"puid;name\n1;Kabel\n"), ("e/empty.csv", b"")):
        with store.create(key) as out:
            out.write(data)
            stored = out.commit()
        assert stored.size == len(data)
        assert stored.sha256 == hashlib.sha256(data).hexdigest()
        with store.open(key) as f:
            assert f.read() == data


def test_byte_ranges_for_206_answers(store):
    data = _pattern(6 * MiB + 100, seed=2)
    with store.create("e/ranged.bin") as out:
        out.write(data)
        size = out.commit().size
    cases = [
        (0, 10),
        (10, 20),
        (5 * MiB - 3, 5 * MiB + 3),
        (size - 1, size),
        (100, None),
        (0, None),
    ]
    for start, end in cases:
        with store.open("e/ranged.bin", start, end) as f:
            assert f.read() == data[start:end], (start, end)
    with store.open("e/ranged.bin", size, None) as f:  # at the end: nothing
        assert f.read() == b""
    with store.open("e/ranged.bin", 7, 7) as f:
        assert f.read() == b""
    with store.open("e/ranged.bin", 1000, 5000) as f:  # in small reads too
        got = b""
        while piece := f.read(333):
            got += piece
        assert got == data[1000:5000]


def test_an_error_while_writing_aborts_and_leaves_nothing(store):
    class WriterFailed(Exception):
        pass

    with pytest.raises(WriterFailed), store.create("e/broken.xml") as out:
        for chunk in _chunks(_pattern(11 * MiB)):  # two parts uploaded, then the failure
            out.write(chunk)
        raise WriterFailed()
    assert store.stat("e/broken.xml") is None
    assert _leftovers(store) == []
    with pytest.raises(NotFound):
        store.open("e/broken.xml")


def test_a_cancel_aborts(store):
    out = store.create("e/cancelled.xml")
    out.write(_pattern(6 * MiB))
    out.abort()
    out.abort()  # twice is fine
    with pytest.raises(ValueError):
        out.write(b"more")
    assert store.stat("e/cancelled.xml") is None
    assert _leftovers(store) == []


def test_delete_for_retention(store):
    with store.create("e/old.xml") as out:
        out.write(b"<old/>")
        out.commit()
    assert store.delete("e/old.xml") is True
    assert store.stat("e/old.xml") is None
    assert store.delete("e/old.xml") is False
    with pytest.raises(NotFound, match=r"There is no file e/old\.xml in "):
        store.open("e/old.xml")


def test_a_zip_writer_streams_into_it(store):
    """Not seekable: zipfile writes data descriptors, as the export's ZIP writers do."""
    with store.create("e/feed.zip") as out:
        assert not out.seekable()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("feed.csv", "puid;name\n" * 1000)
        stored = out.commit()
    with store.open("e/feed.zip") as f:
        body = f.read()
    assert len(body) == stored.size
    local = Path(os.environ["TUIEXPORT_HOME"]) / "check.zip"
    local.write_bytes(body)
    with zipfile.ZipFile(local) as archive:
        assert archive.read("feed.csv") == b"puid;name\n" * 1000


def test_what_a_dead_process_left_is_discarded(store):
    """A process killed mid-run leaves a part file or a pending upload: another removes it."""
    out = store.create("e/killed.xml")
    out.write(_pattern(6 * MiB))
    out.write(b"x")  # the first part is on its way (S3) or on disk (local)
    if not isinstance(store, LocalStore):
        out._wait()  # the part in flight has landed: an upload is pending in the store
    assert len(_leftovers(store)) == 1
    assert store.discard_partial("e/killed.xml") == 1
    assert _leftovers(store) == []
    assert store.discard_partial("e/killed.xml") == 0
    out.abort()  # the writer's own abort finds nothing left, and says nothing


def test_keys_are_plain_relative_paths(store):
    for bad in ("../escape", "/abs", "a//b", "e/.hidden", "", "a/./b"):
        with pytest.raises(ValueError):
            store.create(bad)


# --- the local folder -------------------------------------------------------------------------


def test_local_store_is_the_artifacts_folder(tmp_path):
    root = tmp_path / "artifacts"
    local = open_store("", local_root=root)
    assert isinstance(local, LocalStore)
    with local.create("e/f.csv") as out:
        out.write(b"a;b\n")
        part = Path(out.part)
        assert part.exists() and part.parent == root / "e"
        out.commit()
    assert (root / "e" / "f.csv").read_bytes() == b"a;b\n"
    assert local.local_path("e/f.csv") == root / "e" / "f.csv"  # the server can sendfile it
    assert local.presigned_url("e/f.csv") is None
    local.check()


def test_local_store_on_a_read_only_folder_is_one_sentence(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(0o500)
    with pytest.raises(StorageError, match=r"^Cannot write .*: Permission denied\.$"):
        LocalStore(root).create("e/f.csv")


# --- S3 only ----------------------------------------------------------------------------------


def test_s3_fixture_started(s3_server, capsys):
    with capsys.disabled():
        print(f"\n[radosgw fixture started in {s3_server.started_in:.1f} s]", end=" ")
    assert s3_server.endpoint.startswith("http://127.0.0.1:")


def _stream_traced(store, key: str, mib: int) -> tuple[int, str, int]:
    """Stream ``mib`` MiB in 64 KiB writes; (size, sha256, peak of Python allocations)."""
    block = _pattern(MiB, seed=3)
    tracemalloc.start()
    try:
        with store.create(key) as out:
            for _ in range(mib):
                for chunk in _chunks(block):
                    out.write(chunk)
            stored = out.commit()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return stored.size, stored.sha256, peak


def test_s3_streams_50_mb_with_flat_memory(s3_store):
    size, digest, peak = _stream_traced(s3_store, "e/big.xml", 50)
    assert size == 50 * MiB
    assert digest == hashlib.sha256(_pattern(MiB, seed=3) * 50).hexdigest()
    head = s3_store.client.head_object(Bucket=BUCKET, Key=s3_store.object_key("e/big.xml"))
    assert head["Metadata"]["sha256"] == digest  # as any S3 tool shows it
    assert head["ETag"].strip('"').endswith("-10")  # exactly 10 parts: no empty 11th
    # Flat: half the file needs as much memory as all of it, and neither needs more than the
    # part being filled, its copy on the way out and the parts in flight (plus boto3's own).
    _, _, half = _stream_traced(s3_store, "e/half.xml", 25)
    print(f"[peak: {half / MiB:.1f} MiB for 25 MiB, {peak / MiB:.1f} MiB for 50 MiB]", end=" ")
    assert peak < half + s3_store.part_size
    assert peak < (s3_store.in_flight + 3) * s3_store.part_size


def test_s3_presigned_url_fetches_the_bytes(s3_store):
    data = _pattern(100_000, seed=4)
    with s3_store.create("e/signed.json") as out:
        out.write(data)
        out.commit()
    url = s3_store.presigned_url(
        "e/signed.json", expires=60, disposition='attachment; filename="feed.json"'
    )
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url
    with urllib.request.urlopen(url, timeout=30) as answer:
        assert answer.read() == data
        assert answer.headers["Content-Disposition"] == 'attachment; filename="feed.json"'
    tampered = url.replace("e/signed.json", "e/other.json")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(tampered, timeout=30)
    assert refused.value.code == 403


def _one_sentence(exc: BaseException) -> str:
    message = str(exc)
    assert "\n" not in message and message.endswith("."), message
    assert "Traceback" not in message
    return message


def test_s3_bad_credentials_are_one_sentence(s3_client, monkeypatch):
    from tuiexport.storage.s3 import S3Store

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    bad = S3Store.from_url(f"s3://{BUCKET}/bad", part_size=5 * MiB)
    with pytest.raises(StorageError) as refused:
        bad.check()
    assert "refused the credentials (HTTP 403) to open the bucket" in _one_sentence(refused.value)
    with pytest.raises(StorageError) as refused, bad.create("e/f.xml") as out:
        out.write(_pattern(6 * MiB))  # the first part cannot start its upload
    assert "refused the credentials (SignatureDoesNotMatch)" in _one_sentence(refused.value)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "NOSUCHKEY")
    unknown = S3Store.from_url(f"s3://{BUCKET}/bad")
    with pytest.raises(StorageError) as refused, unknown.create("e/f.xml") as out:
        out.write(b"small")
        out.commit()
    assert "refused the credentials (InvalidAccessKeyId)" in _one_sentence(refused.value)
    assert refused.value.exit_code == 1 and refused.value.http_status == 503


def test_s3_no_credentials_is_one_sentence(aws_env, monkeypatch):
    from tuiexport.storage.s3 import S3Store

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StorageError, match=r"^No credentials for the object store at ") as e:
        S3Store.from_url(f"s3://{BUCKET}/x").check()
    _one_sentence(e.value)


def test_s3_credentials_from_a_profile(aws_env, s3_client, monkeypatch, tmp_path):
    """Keys in ~/.aws/credentials, endpoint and region in the URL: no AWS_* variables."""
    from tuiexport.storage.s3 import S3Store

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name)
    (tmp_path / "aws-credentials").write_text(
        f"[feeds]\naws_access_key_id = {aws_env.access_key}\n"
        f"aws_secret_access_key = {aws_env.secret_key}\n"
    )
    url = f"s3://{BUCKET}/p?endpoint={aws_env.endpoint}&region=us-east-1&profile=feeds"
    store = S3Store.from_url(url)
    store.check()
    with store.create("e/f.txt") as out:
        out.write(b"profile")
        assert out.commit().size == 7
    with pytest.raises(StorageError, match=r"^The AWS profile 'nope' of the artifacts URL is not"):
        S3Store.from_url(url.replace("profile=feeds", "profile=nope"))


def test_s3_missing_bucket_is_one_sentence(aws_env):
    from tuiexport.storage.s3 import S3Store

    gone = S3Store.from_url("s3://no-such-bucket-here/x", part_size=5 * MiB)
    expected = r"^The bucket 'no-such-bucket-here' does not exist at http://127\.0\.0\.1:\d+; "
    for attempt in (
        gone.check,
        lambda: gone.stat("e/f.xml"),
        lambda: gone.open("e/f.xml"),
    ):
        with pytest.raises(StorageError, match=expected) as e:
            attempt()
        _one_sentence(e.value)
    with pytest.raises(StorageError, match=expected), gone.create("e/f.xml") as out:
        out.write(b"small")
        out.commit()
    with pytest.raises(StorageError, match=expected), gone.create("e/f.xml") as out:
        out.write(_pattern(6 * MiB))


def test_s3_unreachable_endpoint_is_one_sentence(aws_env, monkeypatch):
    import socket

    from tuiexport.storage.s3 import S3Store

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(
        StorageError, match=rf"^Cannot reach the object store at http://127\.0\.0\.1:{port} "
    ):
        S3Store.from_url(f"s3://{BUCKET}/x").check()


# --- URLs and the setting ---------------------------------------------------------------------


def test_s3_urls():
    where = parse_s3_url("s3://feeds/prod/runs?endpoint=https://s3.example.com&region=eu-1")
    assert (where.bucket, where.prefix, where.endpoint, where.region) == (
        "feeds",
        "prod/runs",
        "https://s3.example.com",
        "eu-1",
    )
    assert parse_s3_url("s3://feeds").prefix == ""
    for bad, says in (
        ("s3://Feeds/x", "valid bucket name"),
        ("s3://ab/x", "valid bucket name"),
        ("http://feeds/x", "valid bucket name"),
        ("s3://feeds/../x", "prefix"),
        ("s3://feeds/x?secret=1", "unknown option 'secret'"),
        ("s3://feeds/x?addressing_style=dns", "addressing_style"),
        ("s3://feeds/x?endpoint=127.0.0.1:7480", "not an http:// or https:// URL"),
    ):
        with pytest.raises(StorageError, match=says):
            parse_s3_url(bad)
    with pytest.raises(StorageError, match=r"^The artifacts URL 'ftp://x/y' is not supported"):
        open_store("ftp://x/y")


def test_artifacts_url_setting(monkeypatch, isolated_home):
    assert config.load_settings().artifacts_url == ""
    (isolated_home / "config.toml").write_text('artifacts_url = "s3://feeds/runs"\n')
    assert config.load_settings().artifacts_url == "s3://feeds/runs"
    monkeypatch.setenv("TUIEXPORT_ARTIFACTS_URL", "s3://Feeds")
    with pytest.raises(
        config.ConfigError, match=r"valid bucket name .*\(TUIEXPORT_ARTIFACTS_URL\)\.$"
    ):
        config.load_settings()
    monkeypatch.delenv("TUIEXPORT_ARTIFACTS_URL")
    (isolated_home / "config.toml").write_text('artifacts_url = "s3://feeds?x=1"\n')
    with pytest.raises(
        config.ConfigError, match=r"unknown option 'x'.*\(artifacts_url in .*config\.toml\)\.$"
    ):
        config.load_settings()


def test_cli_reports_a_bad_artifacts_url_in_one_line(isolated_home, tmp_path):
    env = {**os.environ, "TUIEXPORT_HOME": str(isolated_home), "TUIEXPORT_ARTIFACTS_URL": "s3:/x"}
    done = subprocess.run(
        [sys.executable, "-m", "tuiexport", "--db", str(tmp_path / "t.sqlite"), "init"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "TUIEXPORT_ARTIFACTS_URL" in done.stderr


def test_a_run_on_sqlite_never_imports_boto3(tmp_path, isolated_home):
    path = tmp_path / "sample.sqlite"
    setup.prepare_database(path, load_sample=True)
    everything = service.create_selection(Criteria(suppliers="all"), name="All")
    service.create_definition(
        "Lines", selection_id=everything.id, profile="developer", output="jsonl"
    )
    dbmod.close_database()
    probe = (
        "import sys\n"
        "from tuiexport.cli import main\n"
        f"code = main(['--db', {str(path)!r}, '--run', 'Lines', '-q'])\n"
        "import tuiexport.storage as storage\n"
        f"storage.open_store('', local_root=__import__('pathlib').Path({str(tmp_path)!r}))\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore'))\n"
        "assert not loaded, loaded\n"
        "sys.exit(code)\n"
    )
    env = {**os.environ, "TUIEXPORT_HOME": str(isolated_home)}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
