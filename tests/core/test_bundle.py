"""Submission bundles: submit writes one zip, verify trusts nothing in it, accept adds only
verified records. Each tampered bundle is rejected with its reason (exit 2), a bundle whose
numbers do not reproduce exits 1."""

from __future__ import annotations

import hashlib
import json
import pickle
import stat
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from ddbench.bundle import MANIFEST, BundleError, Limits, read_bundle
from ddbench.cli import main


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def bundle(fake_plugin, tmp_path):
    """A genuine bundle of one smoke run of the test plugin (two seeds)."""
    res = invoke("run", "-m", "pick", "-t", "meanpix", "-p", "smoke", "--seeds", "0,1", "--json")
    assert res.exit_code == 0, res.output
    run_id = json.loads(res.stdout)["run_id"]
    out = tmp_path / "sub.zip"
    res = invoke("leaderboard", "submit", run_id, "-o", out)
    assert res.exit_code == 0, res.output
    return out


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def rewrite(src: Path, dst: Path, edit, fix_manifest: bool = False) -> Path:
    """Copy a bundle, letting ``edit(data)`` change its members; ``fix_manifest`` re-hashes
    them into bundle.json, as a careful forger would."""
    data = members(src)
    edit(data)
    if fix_manifest:
        man = json.loads(data[MANIFEST])
        for m in man["members"]:
            if m["path"] in data:
                m["size"], m["sha256"] = len(data[m["path"]]), hashlib.sha256(data[m["path"]]).hexdigest()
        data[MANIFEST] = json.dumps(man).encode()
    with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, blob in data.items():
            zf.writestr(name, blob)
    return dst


def record_name(data) -> str:
    return next(n for n in data if n.startswith("records/"))


def test_submit_writes_one_bundle_with_a_manifest_of_every_member(bundle):
    data = members(bundle)
    man = json.loads(data[MANIFEST])
    assert man["kind"] == "ddbench-submission" and man["schema_version"] == 1 and man["created_at"]
    assert {m["path"] for m in man["members"]} == set(data) - {MANIFEST}
    for m in man["members"]:
        assert m["sha256"] == hashlib.sha256(data[m["path"]]).hexdigest() and m["size"] == len(data[m["path"]])
    kinds = {m["kind"] for m in man["members"]}
    assert kinds == {"environment", "record", "images", "distilled-manifest", "extras"}
    assert not any(n.endswith((".pt", ".pkl", ".pth")) for n in data)
    env = json.loads(data["environment.json"])
    assert env["torch"] and env["python"] and "commit" in env
    assert any(p["name"] == "pick" and p["origin"] == "tests" for p in env["plugins"])
    import os

    assert os.environ["DDBENCH_HOME"] not in data[record_name(data)].decode()  # local paths are not published


def test_verify_accept_and_the_page(bundle, tmp_path):
    res = invoke("leaderboard", "verify", bundle, "--seeds", "all", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["verdict"] == "verified" and len(report["comparisons"]) == 4  # 2 seeds x (acc, images)
    assert "verdict: verified" in res.stderr and "tolerance 0.0001" in res.stderr
    lb = tmp_path / "lb"
    res = invoke("leaderboard", "accept", bundle, "--dir", lb, "--no-png")
    assert res.exit_code == 0, res.output
    (rec_file,) = (lb / "records").glob("*.json")
    rec = json.loads(rec_file.read_text())
    v = rec["verification"]
    assert v["verdict"] == "verified" and v["seeds"] == [0] and v["tolerance"] == 1e-4
    assert v["metrics"]["acc"]["0"] == pytest.approx(rec["metrics"][0]["per_seed"][0], abs=1e-4)
    assert (lb / "README.md").exists() and (lb / "index.html").exists()
    assert "✓ seed 0" in (lb / "README.md").read_text()
    assert f'href="records/{rec_file.name}"' in (lb / "index.html").read_text()
    res = invoke("leaderboard", "accept", bundle, "--dir", lb, "--no-png")
    assert res.exit_code == 2 and "already on the leaderboard" in res.output


def test_an_edited_metric_with_the_manifest_left_alone_is_tampering(bundle, tmp_path):
    def edit(data):
        name = record_name(data)
        rec = json.loads(data[name])
        rec["metrics"][0]["per_seed"][0] += 10
        data[name] = json.dumps(rec).encode()

    res = invoke("leaderboard", "verify", rewrite(bundle, tmp_path / "t.zip", edit))
    assert res.exit_code == 2 and "the manifest does not match the bundle (tampered)" in res.output
    assert "records/" in res.output and "Traceback" not in res.output

    def same_size(data):  # the same number of bytes: only the hash can tell
        name = record_name(data)
        text = data[name].decode()
        old = json.dumps(json.loads(text)["metrics"][0]["per_seed"][0])
        new = str(int(old[0]) + 1 if old[0] != "9" else 1) + old[1:]
        data[name] = text.replace(f"[\n        {old}", f"[\n        {new}", 1).encode()
        assert data[name] != text.encode()

    res = invoke("leaderboard", "verify", rewrite(bundle, tmp_path / "u.zip", same_size))
    assert res.exit_code == 2 and "does not match its sha256" in res.output and "(tampered)" in res.output


def test_an_edited_metric_with_a_consistent_manifest_does_not_reproduce(bundle, tmp_path):
    def edit(data):
        name = record_name(data)
        rec = json.loads(data[name])
        rec["metrics"][0]["per_seed"][0] += 10
        data[name] = json.dumps(rec).encode()

    res = invoke("leaderboard", "verify", rewrite(bundle, tmp_path / "t.zip", edit, fix_manifest=True))
    assert res.exit_code == 1, res.output
    assert "not reproduced" in res.output and "acc" in res.output
    lb = tmp_path / "lb"
    res = invoke("leaderboard", "accept", tmp_path / "t.zip", "--dir", lb)
    assert res.exit_code == 1 and not (lb / "records").exists()  # accept adds nothing unverified
    # a looser tolerance is the verifier's call, and says so
    res = invoke("leaderboard", "verify", tmp_path / "t.zip", "--tolerance", "20")
    assert res.exit_code == 0 and "tolerance 20" in res.output


def test_a_swapped_distilled_image_is_refused(bundle, tmp_path):
    def edit(data):
        a, b = sorted(n for n in data if n.endswith("images.safetensors"))
        data[a] = data[b]  # seed 1's set in seed 0's place

    res = invoke("leaderboard", "verify", rewrite(bundle, tmp_path / "t.zip", edit, fix_manifest=True))
    assert res.exit_code == 2 and "the distilled set was swapped" in res.output


@pytest.mark.parametrize("lie, needle", [("size", "the manifest does not match"), ("sha256", "does not match its sha256")])
def test_a_manifest_that_lies_is_refused(bundle, tmp_path, lie, needle):
    def edit(data):
        man = json.loads(data[MANIFEST])
        m = man["members"][1]
        m[lie] = m[lie] + 1 if lie == "size" else "0" * 64
        data[MANIFEST] = json.dumps(man).encode()

    res = invoke("leaderboard", "verify", rewrite(bundle, tmp_path / "t.zip", edit))
    assert res.exit_code == 2 and needle in res.output


def test_a_pickle_inside_is_refused(bundle, tmp_path):
    blob = pickle.dumps({"metrics": 1})
    res = invoke("leaderboard", "verify", rewrite(bundle, tmp_path / "a.zip", lambda d: d.update({"model.pkl": blob})))
    assert res.exit_code == 2 and "'model.pkl' is a pickle-capable format" in res.output

    def disguise(data):
        data[next(n for n in data if n.endswith("extras.json"))] = blob

    res = invoke("leaderboard", "verify", rewrite(bundle, tmp_path / "b.zip", disguise, fix_manifest=True))
    assert res.exit_code == 2 and "is a pickle" in res.output and "not JSON" in res.output


@pytest.mark.parametrize("name, needle", [("../evil.json", "path traversal"), ("/etc/evil.json", "absolute path"),
                                          ("records/../../x.json", "path traversal"),
                                          ("distilled/r/seed0/run.py", "is code")])
def test_unsafe_member_names_are_refused(bundle, tmp_path, name, needle):
    res = invoke("leaderboard", "verify", rewrite(bundle, tmp_path / "t.zip", lambda d: d.update({name: b"{}"})))
    assert res.exit_code == 2 and needle in res.output, res.output


def test_a_member_not_in_the_manifest_and_a_missing_member_are_refused(bundle, tmp_path):
    res = invoke("leaderboard", "verify", rewrite(bundle, tmp_path / "a.zip",
                                                  lambda d: d.update({"records/extra-run.json": b"{}"})))
    assert res.exit_code == 2 and "is not in bundle.json" in res.output

    def drop(data):
        del data[next(n for n in data if n.endswith("manifest.json"))]

    res = invoke("leaderboard", "verify", rewrite(bundle, tmp_path / "b.zip", drop))
    assert res.exit_code == 2 and "which the bundle does not hold" in res.output


def test_a_truncated_bundle_and_a_truncated_set_are_refused(bundle, tmp_path):
    cut = tmp_path / "cut.zip"
    cut.write_bytes(bundle.read_bytes()[: bundle.stat().st_size // 2])
    res = invoke("leaderboard", "verify", cut)
    assert res.exit_code == 2 and "truncated" in res.output

    def truncate(data):
        name = next(n for n in data if n.endswith("images.safetensors"))
        data[name] = data[name][:-100]

    res = invoke("leaderboard", "verify", rewrite(bundle, tmp_path / "t.zip", truncate, fix_manifest=True))
    assert res.exit_code == 2 and "is truncated" in res.output


def test_a_bundle_from_an_unknown_method_names_what_is_missing(bundle, tmp_path):
    def rename(data):
        name = record_name(data)
        rec = json.loads(data[name])
        rec["method"] = rec["config"]["method"] = "their_method"
        rec["config"]["origins"]["method"] = "their-ddbench-plugin 0.3"
        data[name] = json.dumps(rec).encode()

    res = invoke("leaderboard", "verify", rewrite(bundle, tmp_path / "t.zip", rename, fix_manifest=True))
    assert res.exit_code == 2 and "not installed" in res.output
    assert "method 'their_method'" in res.output and "their-ddbench-plugin 0.3" in res.output


def test_a_zip_bomb_symlinks_and_duplicates_are_refused_before_extraction(bundle, tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("records/x.json", b" " * (3 * 2**20))  # 3 MiB of spaces: ~1000-fold
    with pytest.raises(BundleError, match="possible zip bomb"):
        read_bundle(bomb)
    with pytest.raises(BundleError, match="over the limit"):
        read_bundle(bundle, Limits(tensor_bytes=100))
    link = tmp_path / "link.zip"
    info = zipfile.ZipInfo("records/x.json")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(link, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    res = invoke("leaderboard", "verify", link)
    assert res.exit_code == 2 and "is a symlink" in res.output
    dup = tmp_path / "dup.zip"
    with zipfile.ZipFile(dup, "w") as zf, pytest.warns(UserWarning):
        zf.writestr("environment.json", b"{}")
        zf.writestr("environment.json", b"{}")
    res = invoke("leaderboard", "verify", dup)
    assert res.exit_code == 2 and "more than once" in res.output


def test_a_member_that_holds_more_than_it_declares_is_cut_off(bundle, tmp_path):
    """Declared sizes are never trusted: the reader stops at the cap."""
    from ddbench.bundle import _read_capped

    with zipfile.ZipFile(bundle) as zf:
        info = zf.getinfo(MANIFEST)
        with pytest.raises(BundleError, match="holds more than 10 bytes"):
            _read_capped(zf, info, 10)


def test_submit_refuses_what_it_cannot_bundle(fake_plugin, tmp_path):
    res = invoke("run", "-m", "pick", "-t", "meanpix", "-p", "smoke", "--json")
    run_id = json.loads(res.stdout)["run_id"]
    import shutil

    from ddbench import paths

    shutil.rmtree(paths.home() / "cache" / "distilled")
    res = invoke("leaderboard", "submit", run_id, "-o", tmp_path / "x.zip")
    assert res.exit_code == 2 and "is gone from" in res.output and "Traceback" not in res.output
    res = invoke("leaderboard", "verify", tmp_path / "nothing.zip")
    assert res.exit_code == 2 and "no bundle at" in res.output


@pytest.mark.parametrize("dropped, verdict", [("images", 0), ("acc", 1)])
def test_a_diagnostic_the_verifier_cannot_recompute_is_noted_a_headline_one_fails(bundle, monkeypatch, dropped,
                                                                                  verdict):
    """A diagnostic that needs an artifact the bundle lacks (a set's target model) is noted and
    left out; a headline number that does not come back is a failure to reproduce."""
    import ddbench.verify as v

    real = v.rescore
    monkeypatch.setattr(v, "rescore", lambda *a, **k: {n: x for n, x in real(*a, **k).items() if n != dropped})
    res = invoke("leaderboard", "verify", bundle, "--json")
    assert res.exit_code == verdict, res.output
    report = json.loads(res.stdout)
    if verdict == 0:
        assert any(f"the diagnostic {dropped} was not re-scored" in n for n in report["notes"])
        assert {c["metric"] for c in report["comparisons"]} == {"acc"}
    else:
        assert report["verdict"] == "not reproduced" and "acc" in report["reason"]
