"""Object store: one behavioural suite over both backends, then each backend's failures.

The S3 backend talks to a real moto server over loopback (``s3_endpoint``, tests/s3server.py);
the folder backend to a temporary folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from renderer.errors import InvalidKey, InvalidMetadata, ObjectNotFound, StorageError
from renderer.storage import DEFAULT_CONTENT_TYPE, FileStore, S3Store, Store, open_store

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "renderer-test"


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "file":
        return FileStore(tmp_path / "store")
    request.getfixturevalue("s3_endpoint")
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return open_store(f"s3://{BUCKET}/runs/1")


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def keys(store: Store, prefix: str = "") -> list[str]:
    return [info.key for info in store.list(prefix)]


# --- behaviour common to both backends --------------------------------------------------------


def test_put_get_head(store: Store) -> None:
    info = store.put("2026/47/0/002/140.spd.0.gz", b"speed", content_type="application/gzip")
    assert (info.key, info.size, info.etag) == ("2026/47/0/002/140.spd.0.gz", 5, md5(b"speed"))
    assert store.get("2026/47/0/002/140.spd.0.gz") == b"speed"
    head = store.head("2026/47/0/002/140.spd.0.gz")
    assert head is not None
    assert (head.size, head.etag, head.metadata) == (5, md5(b"speed"), {})
    assert head.content_type == "application/gzip"
    assert head.modified is not None and abs(head.modified - time.time()) < 120
    assert store.exists("2026/47/0/002/140.spd.0.gz")


def test_missing_objects(store: Store) -> None:
    assert store.head("nope") is None
    assert not store.exists("nope")
    assert keys(store) == []
    with pytest.raises(ObjectNotFound) as caught:
        store.get("a/nope")
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, StorageError)
    assert "a/nope" in str(caught.value) and "\n" not in str(caught.value)
    store.delete("nope")  # deleting nothing is fine, as in S3


def test_metadata(store: Store) -> None:
    store.put("0/002/140.ref.gz", b"ref", {"rangeStart": "1700000000", "rangeEnd": "1731536000"})
    head = store.head("0/002/140.ref.gz")
    assert head is not None
    # lowercased, as S3 returns user metadata
    assert head.metadata == {"rangestart": "1700000000", "rangeend": "1731536000"}
    assert head.content_type == DEFAULT_CONTENT_TYPE
    # list() carries no metadata (S3 lists none), head() does
    [listed] = store.list()
    assert listed.metadata == {} and listed.etag == head.etag and listed.size == 3


def test_put_replaces_data_and_metadata(store: Store) -> None:
    store.put("k", b"first", {"a": "1"}, "text/plain")
    store.put("k", b"second!")
    head = store.head("k")
    assert head is not None
    assert store.get("k") == b"second!"
    assert (head.size, head.etag, head.metadata) == (7, md5(b"second!"), {})
    assert head.content_type == DEFAULT_CONTENT_TYPE


def test_list_is_sorted_recursive_and_prefixed(store: Store) -> None:
    names = ["b", "a/c", "a/b/c", "a/bc", "a/b/d/e", "a-b", "ab", "z/y/x/w/v/u"]
    for name in names:
        store.put(name, name.encode())
    assert keys(store) == sorted(names)
    assert keys(store, "a/b") == ["a/b/c", "a/b/d/e", "a/bc"]  # string prefix, as in S3
    assert keys(store, "a/b/") == ["a/b/c", "a/b/d/e"]
    assert keys(store, "a") == ["a-b", "a/b/c", "a/b/d/e", "a/bc", "a/c", "ab"]
    assert keys(store, "q") == []
    assert keys(store, "z/y/x/w/v/") == ["z/y/x/w/v/u"]
    assert {info.key: info.size for info in store.list()} == {n: len(n) for n in names}


def test_delete(store: Store) -> None:
    store.put("a/b", b"1", {"x": "y"})
    store.put("a/c", b"2")
    store.delete("a/b")
    assert not store.exists("a/b")
    assert keys(store) == ["a/c"]
    store.put("a/b", b"3")
    assert store.head("a/b").metadata == {}  # type: ignore[union-attr]


def test_move_keeps_content_and_metadata(store: Store) -> None:
    store.put("inbox/1_2/0/2140/r.csv", b"rows", {"source": "reporter"}, "text/csv")
    store.move("inbox/1_2/0/2140/r.csv", "archive/1_2/0/2140/r.csv")
    assert not store.exists("inbox/1_2/0/2140/r.csv")
    head = store.head("archive/1_2/0/2140/r.csv")
    assert head is not None
    assert (head.etag, head.metadata, head.content_type) == (
        md5(b"rows"),
        {"source": "reporter"},
        "text/csv",
    )
    assert store.get("archive/1_2/0/2140/r.csv") == b"rows"
    assert keys(store) == ["archive/1_2/0/2140/r.csv"]


def test_move_replaces_target_and_refuses_missing(store: Store) -> None:
    store.put("a", b"new")
    store.put("b", b"old", {"stale": "yes"})
    store.move("a", "b")
    assert store.get("b") == b"new"
    assert store.head("b").metadata == {}  # type: ignore[union-attr]
    with pytest.raises(ObjectNotFound):
        store.move("a", "c")
    store.move("b", "b")  # onto itself: nothing to do
    assert store.get("b") == b"new"


def test_large_object(store: Store) -> None:
    data = os.urandom(12 * 1024 * 1024 + 7)  # above boto3's 8 MB multipart threshold
    info = store.put("big/blob.bin", data)
    assert info.etag == md5(data)  # written in one part: the etag is the MD5
    assert store.get("big/blob.bin") == data
    assert store.head("big/blob.bin").size == len(data)  # type: ignore[union-attr]


def test_unicode_and_empty_objects(store: Store) -> None:
    store.put("straße/über.txt", b"")
    assert store.get("straße/über.txt") == b""
    assert keys(store) == ["straße/über.txt"]
    assert store.head("straße/über.txt").etag == md5(b"")  # type: ignore[union-attr]


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "..", "a//b", "a/", "./a", "a\\b"])
def test_bad_keys(store: Store, key: str) -> None:
    with pytest.raises(InvalidKey, match="key"):
        store.put(key, b"x")
    with pytest.raises(InvalidKey, match="key"):
        store.get(key)
    assert issubclass(InvalidKey, StorageError) and issubclass(InvalidKey, ValueError)


@pytest.mark.parametrize("prefix", ["/abs", "a/../b", "a\\b"])
def test_bad_prefixes(store: Store, prefix: str) -> None:
    with pytest.raises(InvalidKey, match="prefix"):
        store.list(prefix)


@pytest.mark.parametrize(
    "metadata", [{"ü": "1"}, {"a": "ü"}, {"a b": "1"}, {"a": "line\nbreak"}, {"A": "1", "a": "2"}]
)
def test_bad_metadata(store: Store, metadata: dict[str, str]) -> None:
    with pytest.raises(InvalidMetadata, match="metadata"):
        store.put("k", b"x", metadata)
    assert not store.exists("k")


# --- open_store -------------------------------------------------------------------------------


def test_open_store_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert open_store(f"file://{tmp_path}/s").url == (tmp_path / "s").as_uri()
    assert open_store(f"file://localhost{tmp_path}/s").url == (tmp_path / "s").as_uri()
    assert open_store("relative/store").url == (tmp_path / "relative/store").as_uri()
    assert open_store(str(tmp_path / "x y")).url == (tmp_path / "x y").as_uri()
    assert open_store((tmp_path / "x y").as_uri()).url == (tmp_path / "x y").as_uri()
    s3 = open_store("s3://bucket/a/b/")
    assert isinstance(s3, S3Store) and (s3.bucket, s3.prefix) == ("bucket", "a/b/")
    assert open_store("s3://bucket").url == "s3://bucket/"


@pytest.mark.parametrize(
    ("url", "message"),
    [("gs://b/p", "unsupported"), ("s3:///p", "no bucket"), ("file://host/p", "names a host")],
)
def test_open_store_bad_urls(url: str, message: str) -> None:
    with pytest.raises(StorageError, match=message) as caught:
        open_store(url)
    assert caught.value.fix


# --- the folder backend -----------------------------------------------------------------------


def test_folder_layout_is_plain_files_and_hidden_sidecars(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put("0/002/140.ref.gz", b"ref", {"rangeStart": "1"})
    assert (tmp_path / "0/002/140.ref.gz").read_bytes() == b"ref"
    hidden = sorted(p.name for p in (tmp_path / "0/002").iterdir() if p.name.startswith("."))
    assert hidden == [".140.ref.gz.meta.json"]  # no temporary file left behind
    assert keys(store) == ["0/002/140.ref.gz"]
    store.delete("0/002/140.ref.gz")
    assert list((tmp_path / "0/002").iterdir()) == []


def test_folder_files_dropped_in_by_hand(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    (tmp_path / "in/1_2").mkdir(parents=True)
    (tmp_path / "in/1_2/r.csv").write_bytes(b"by hand")
    head = store.head("in/1_2/r.csv")
    assert head is not None and (head.etag, head.metadata) == (md5(b"by hand"), {})
    # changed by hand after a put: the sidecar's stamp no longer matches, so it is ignored
    store.put("k", b"one", {"a": "1"})
    (tmp_path / "k").write_bytes(b"changed")
    head = store.head("k")
    assert head is not None and (head.etag, head.metadata) == (md5(b"changed"), {})
    assert [i.etag for i in store.list("k")] == [md5(b"changed")]


def test_folder_rejects_hidden_key_parts(tmp_path: Path) -> None:
    with pytest.raises(InvalidKey, match="sidecars"):
        FileStore(tmp_path).put("a/.b", b"x")


def test_folder_key_and_folder_cannot_share_a_name(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put("a", b"x")
    with pytest.raises(StorageError, match="a file stands where a folder is needed") as caught:
        store.put("a/b", b"y")
    assert caught.value.fix
    store.put("c/d", b"y")
    with pytest.raises(StorageError, match="a folder stands where"):
        store.put("c", b"z")
    assert store.head("c") is None
    with pytest.raises(ObjectNotFound):
        store.get("c")


def test_folder_store_root_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    store = open_store(str(tmp_path / "file" / "store"))
    with pytest.raises(StorageError, match="a file stands where a folder is needed"):
        store.put("a", b"x")


def test_folder_unwritable(tmp_path: Path) -> None:
    folder = Path(tempfile.mkdtemp(prefix="renderer-ro-"))
    try:
        folder.chmod(0o555)
        if os.geteuid() != 0:
            with pytest.raises(StorageError, match="permission denied") as caught:
                FileStore(folder).put("a/b", b"x")
            message = str(caught.value)
        else:  # root writes anywhere: import as root, then drop to nobody and try
            code = (
                "import os, sys\n"
                "from renderer.errors import StorageError\n"
                "from renderer.storage import FileStore\n"
                "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
                "try:\n"
                "    FileStore(sys.argv[1]).put('a/b', b'x')\n"
                "except StorageError as error:\n"
                "    print(error)\n"
                "    sys.exit(3)\n"
            )
            result = subprocess.run(
                [sys.executable, "-B", "-c", code, str(folder)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 3, result.stderr
            message = result.stdout.strip()
        assert message.startswith(f"permission denied to write {folder}/a")
        assert "RENDERER_STORAGE" in message and "\n" not in message
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


NAMES = st.text(alphabet="abc-_0", min_size=1, max_size=3)
KEYS = st.lists(NAMES, min_size=1, max_size=3).map("/".join)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sets(KEYS, max_size=12), st.text(alphabet="abc-_0/", max_size=4))
def test_folder_list_matches_a_sorted_filter(keyset: set[str], prefix: str) -> None:
    # A key cannot also be a folder in a file store: drop the keys that are folders of others.
    keyset = {k for k in keyset if not any(o.startswith(k + "/") for o in keyset)}
    with tempfile.TemporaryDirectory() as root:
        store = FileStore(root)
        for key in keyset:
            store.put(key, key.encode())
        if ".." in prefix.split("/") or prefix.startswith("/"):
            return
        assert keys(store, prefix) == sorted(k for k in keyset if k.startswith(prefix))


# --- the S3 backend ---------------------------------------------------------------------------


def test_s3_paginates(s3_endpoint: str) -> None:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    store = S3Store(BUCKET, "p")
    store.page_size = 2
    names = [f"k{i:02d}" for i in range(7)]
    for name in reversed(names):
        store.put(name, b"x")
    boto3.client("s3").put_object(Bucket=BUCKET, Key="outside-the-prefix", Body=b"")
    assert keys(store) == names


def test_s3_endpoint_from_the_environment(s3_endpoint: str) -> None:
    assert S3Store(BUCKET).client.meta.endpoint_url == s3_endpoint


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that never answers: its accept queue is full, so SYNs are dropped."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    yield port
    for sock in [*fillers, server]:
        sock.close()


@pytest.mark.parametrize("kind", ["refused", "no route", "silent"])
def test_s3_unreachable_endpoint_fails_fast(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, kind: str
) -> None:
    endpoint = {
        "refused": lambda: f"http://127.0.0.1:{closed_port()}",
        "no route": lambda: "http://192.0.2.1:9",  # TEST-NET-1: dropped or unroutable
        "silent": lambda: f"http://127.0.0.1:{request.getfixturevalue('silent_port')}",
    }[kind]()
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    store = open_store("s3://bucket/p")
    started = time.monotonic()
    with pytest.raises(StorageError, match="cannot reach the S3 endpoint") as caught:
        store.put("k", b"x")
    elapsed = time.monotonic() - started
    assert endpoint in str(caught.value) and "AWS_ENDPOINT_URL" in str(caught.value)
    # two attempts of at most a 3 s connect timeout each
    assert elapsed < 10, f"took {elapsed:.1f}s to give up"


def test_s3_without_credentials(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StorageError, match="no AWS credentials") as caught:
        open_store("s3://bucket/p").get("k")
    assert "AWS_ACCESS_KEY_ID" in str(caught.value)


def test_s3_missing_bucket(s3_endpoint: str) -> None:
    with pytest.raises(StorageError, match="bucket 'absent' does not exist"):
        open_store("s3://absent/p").put("k", b"x")
    with pytest.raises(StorageError, match="does not exist"):
        list(open_store("s3://absent").list())


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("AccessDenied", "access denied to write s3://b/p/k"),
        ("InvalidAccessKeyId", "refused the credentials"),
        ("SlowDown", "could not write s3://b/p/k: SlowDown"),
    ],
)
def test_s3_error_messages(code: str, message: str) -> None:
    # S3 permissions are not emulated by moto: check the mapping of S3's error codes directly.
    store = S3Store("b", "p", client=boto3.client("s3", region_name="us-east-1"))
    error = ClientError({"Error": {"Code": code, "Message": "m"}}, "PutObject")
    mapped = store._error(error, "write", "k")
    assert type(mapped) is StorageError
    assert message in str(mapped) and mapped.fix and "\n" not in str(mapped)


@pytest.fixture
def no_leftover_env() -> Iterator[None]:
    before = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    yield
    assert {k: v for k, v in os.environ.items() if k.startswith("AWS_")} == before


def test_s3_endpoint_fixture_restores_environment(no_leftover_env: None, s3_endpoint: str) -> None:
    assert os.environ["AWS_ENDPOINT_URL"] == s3_endpoint
