"""The folder store under attack: temporary files left by a writer killed mid-write (kill -9),
removed by the next write to their folder once older than the grace period and shown by the
doctor; symbolic links out of the root, never read."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from renderer import config, doctor
from renderer.errors import ObjectNotFound
from renderer.storage import FileStore

# A writer that blocks for ever inside fsync-free writing: it writes the temporary file
# through the store's own helper, then waits to be killed before renaming it into place.
_WRITER = """
import sys, time
from pathlib import Path
from renderer.storage.files import FileStore
FileStore._write_temp(Path(sys.argv[1]) / "a" / "obj.bin", b"x" * 1000)
print("written", flush=True)
time.sleep(60)
"""


def _killed_writer(root: Path) -> Path:
    (root / "a").mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(root)], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"written\n"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (temp,) = (p for p in (root / "a").iterdir() if p.name.endswith(".tmp"))
    return temp


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_killed_writers_temp_file_is_removed_by_the_next_write(tmp_path: Path) -> None:
    temp = _killed_writer(tmp_path)
    store = FileStore(tmp_path)
    assert [i.key for i in store.list("")] == []  # hidden from listings
    _age(temp, 7200)
    store.put("a/other.bin", b"y")
    assert not temp.exists()
    assert [i.key for i in store.list("")] == ["a/other.bin"]


def test_a_young_temp_file_may_be_a_concurrent_writers_and_stays(tmp_path: Path) -> None:
    temp = _killed_writer(tmp_path)
    store = FileStore(tmp_path)
    store.put("a/other.bin", b"y")
    assert temp.exists()
    assert store.stale_temps() == []


def test_stale_temps_are_listed_cleaned_and_shown_by_the_doctor(tmp_path: Path) -> None:
    temp = _killed_writer(tmp_path)
    (tmp_path / "a" / "not-ours.tmp").write_bytes(b"a user's file, not a store temp")
    _age(temp, 7200)
    _age(tmp_path / "a" / "not-ours.tmp", 7200)
    store = FileStore(tmp_path)
    assert store.stale_temps() == [temp]
    check = doctor.check_store_temps(config.Settings(storage=str(tmp_path)))
    assert not check.ok and "1 temporary file(s)" in check.detail and str(temp) in check.detail
    assert store.clean_temps() == 1 and not temp.exists()
    assert doctor.check_store_temps(config.Settings(storage=str(tmp_path))).ok


def test_links_are_not_followed_unless_allowed_inside_the_root(tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "shadow"
    secret.parent.mkdir()
    secret.write_text("root:$6$secrethash:19000:0:99999:7:::\n")
    root = tmp_path / "source"
    folder = root / "1477872000_1477875599" / "0" / "3105"
    folder.mkdir(parents=True)
    (folder / "real.csv").write_text("data\n")
    os.symlink(secret, folder / "shadow.csv")
    os.symlink(folder / "real.csv", folder / "alias.csv")
    os.symlink(secret.parent, root / "linked-dir")
    strict = FileStore(root)
    assert [i.key for i in strict.list("")] == ["1477872000_1477875599/0/3105/real.csv"]
    for key in ("1477872000_1477875599/0/3105/shadow.csv", "linked-dir/shadow"):
        assert strict.head(key) is None
        with pytest.raises(ObjectNotFound):
            strict.get(key)
    inside = FileStore(root, follow_symlinks=True)
    assert [i.key.rsplit("/", 1)[1] for i in inside.list("")] == ["alias.csv", "real.csv"]
    assert inside.get("1477872000_1477875599/0/3105/alias.csv") == b"data\n"
    with pytest.raises(ObjectNotFound):
        inside.get("1477872000_1477875599/0/3105/shadow.csv")
