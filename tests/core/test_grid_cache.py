"""The artifact cache across processes (what grid workers rely on): one process makes an
artifact while the others wait and reuse it; a killed maker's lock is released and its
checkpoints resume; an artifact that no longer matches its manifest is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ddbench.cache import MANIFEST, ArtifactCache
from ddbench.errors import StoreError

KEY = {"kind": "test", "what": "a slow artifact"}

MAKER = """
import json, os, sys, time
from pathlib import Path
from ddbench.cache import ArtifactCache

root, log, hold = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])

def create(out, ckpt):
    with open(log, "a") as f:
        f.write(f"create {os.getpid()}\\n")
    (ckpt / "step1").write_text("half way")
    time.sleep(hold)
    (out / "value.txt").write_text("42")

folder, cached = ArtifactCache(root).get_or_create("slow", %r, create)
print(json.dumps({"folder": str(folder), "cached": cached, "pid": os.getpid()}))
""" % (KEY,)


def _start(tmp_path: Path, hold: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", MAKER, str(tmp_path / "cache"), str(tmp_path / "log"), str(hold)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "DDBENCH_QUIET": "1"})


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_two_processes_one_creates_the_other_waits_and_reuses(tmp_path):
    first = _start(tmp_path, hold=2.0)
    _wait_for(tmp_path / "log")  # the first holds the lock and is creating
    second = _start(tmp_path, hold=0.0)
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0]
    assert (tmp_path / "log").read_text().count("create") == 1
    assert outs[0]["folder"] == outs[1]["folder"]
    assert [o["cached"] for o in outs] == [False, True]
    folder = Path(outs[0]["folder"])
    assert (folder / "value.txt").read_text() == "42" and (folder / MANIFEST).exists()
    assert not folder.with_name(folder.name + ".partial").exists()
    assert not folder.with_name(folder.name + ".lock").exists()  # removed once the artifact is in place


def test_a_killed_maker_releases_its_lock_and_the_next_resumes_from_its_checkpoint(tmp_path):
    first = _start(tmp_path, hold=600.0)
    _wait_for(tmp_path / "log")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    seen = {}

    def create(out, ckpt):
        seen["checkpoint"] = (ckpt / "step1").read_text()
        (out / "value.txt").write_text("42")

    cache = ArtifactCache(tmp_path / "cache")
    t0 = time.time()
    folder, cached = cache.get_or_create("slow", KEY, create)
    assert time.time() - t0 < 10 and not cached  # not blocked by the dead process's lock
    assert seen["checkpoint"] == "half way"
    assert not list(folder.parent.glob(folder.name + ".tmp*"))  # the dead process's half-written copy is gone


def test_an_artifact_that_does_not_match_its_manifest_is_refused_when_verifying(tmp_path):
    cache = ArtifactCache(tmp_path / "cache")
    folder, _ = cache.get_or_create("thing", KEY, lambda out, ckpt: (out / "w.bin").write_bytes(b"\x00" * 100))
    assert json.loads((folder / MANIFEST).read_text())["w.bin"]
    assert ArtifactCache(tmp_path / "cache", verify=True).get_or_create("thing", KEY, None) == (folder, True)
    (folder / "w.bin").write_bytes(b"\x00" * 50)  # a half-copied file on a shared folder
    assert ArtifactCache(tmp_path / "cache").get_or_create("thing", KEY, None) == (folder, True)
    with pytest.raises(StoreError, match="does not match its manifest .*w.bin differs.*rm -r"):
        ArtifactCache(tmp_path / "cache", verify=True).get_or_create("thing", KEY, None)
