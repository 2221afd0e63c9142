"""Submission bundles: one zip a researcher sends and a maintainer checks without trusting it.

``ddbench leaderboard submit`` writes the bundle, ``verify`` checks it and re-scores its
distilled sets, ``accept`` puts verified records on the leaderboard.

Layout (every member is JSON or safetensors; nothing is ever unpickled or imported)::

    bundle.json                                  the manifest: schema, ddbench version, created_at,
                                                 and per member {path, size, sha256, kind}
    environment.json                             python, torch, platform, device, commit, plugins
    records/<run_id>.json                        the run records (finished runs only)
    distilled/<run_id>/seed<k>/images.safetensors
    distilled/<run_id>/seed<k>/manifest.json     the distilled set of that seed
    distilled/<run_id>/seed<k>/extras.json       what the method reported while distilling

Reading checks the zip's directory before anything is extracted (names, types, sizes,
compression ratio), then reads each member with a hard cap, whatever its header declares.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import math
import re
import stat
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable, Iterable

from . import __version__
from .errors import DDBenchError
from .records import RunRecord

BUNDLE_SCHEMA = 1
BUNDLE_KIND = "ddbench-submission"
MANIFEST = "bundle.json"
ENVIRONMENT = "environment.json"

#: the only member paths a bundle may hold
_RUN_ID = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_PATTERNS = {
    "environment": re.compile(re.escape(ENVIRONMENT)),
    "record": re.compile(rf"records/{_RUN_ID}\.json"),
    "images": re.compile(rf"distilled/{_RUN_ID}/seed-?[0-9]{{1,9}}/images\.safetensors"),
    "distilled-manifest": re.compile(rf"distilled/{_RUN_ID}/seed-?[0-9]{{1,9}}/manifest\.json"),
    "extras": re.compile(rf"distilled/{_RUN_ID}/seed-?[0-9]{{1,9}}/extras\.json"),
}
#: the safetensors dtypes a distilled set may use
_DTYPES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


class BundleError(DDBenchError):
    """The bundle is malformed or was tampered with (``verify`` exits 2)."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """What a bundle may hold; checked from the zip directory and again while reading."""

    #: a JSON member (records, manifests, environment)
    json_bytes: int = 16 * 2**20
    #: one distilled set's tensors
    tensor_bytes: int = 2 * 2**30
    #: everything, uncompressed
    total_bytes: int = 8 * 2**30
    members: int = 10_000
    #: uncompressed / compressed, for members over ``ratio_from`` bytes (a zip bomb)
    max_ratio: float = 200.0
    ratio_from: int = 2**20
    #: a safetensors header (JSON) may be this long
    safetensors_header: int = 2**20


DEFAULT_LIMITS = Limits()


def kind_of(path: str) -> str | None:
    for kind, pattern in _PATTERNS.items():
        if pattern.fullmatch(path):
            return kind
    return None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- writing


def plugin_inventory() -> list[dict[str, str]]:
    """Every registered plugin with the distribution (and version) that supplied it, as
    ``ddbench plugins`` shows them."""
    from . import plugins

    return [{"kind": kind, "name": e.name, "origin": e.origin}
            for kind in plugins.KINDS for e in plugins.registry(kind)]


def environment_of(records: Iterable[RunRecord]) -> dict[str, Any]:
    import platform

    from .runner import git_commit

    try:
        import torch

        torch_version = torch.__version__
    except ImportError:  # pragma: no cover
        torch_version = None
    return {"ddbench": __version__, "python": platform.python_version(), "torch": torch_version,
            "platform": platform.platform(), "machine": platform.machine(), "commit": git_commit(),
            "plugins": plugin_inventory(),
            "runs": {r.run_id: {"env": r.env, "commit": r.commit, "origins": r.config.origins} for r in records}}


def _public(text: str) -> str:
    """Local paths under DDBENCH_HOME, written relative to it (as ``leaderboard add`` does)."""
    from . import paths

    return text.replace(json.dumps(str(paths.home()))[1:-1], "$DDBENCH_HOME")


def write_bundle(records: list[RunRecord], out: Path) -> dict[str, Any]:
    """Write ``records`` (finished runs) with their distilled sets into the zip ``out``; returns
    the manifest."""
    from .distilled import sha256_file

    members: list[tuple[str, bytes]] = []
    for rec in records:
        if rec.status != "finished":
            raise DDBenchError(f"run {rec.run_id} is {rec.status}, not finished; only finished runs can be submitted")
        if not re.fullmatch(_RUN_ID, rec.run_id):
            raise DDBenchError(f"run id {rec.run_id!r} cannot name a bundle member; submit runs made by `ddbench run`")
        members.append((f"records/{rec.run_id}.json",
                        _public(json.dumps(rec.to_dict(), indent=2, sort_keys=True, default=str)).encode()))
        for seed in rec.seeds:
            art = rec.artifacts.get(f"distilled/seed{seed}")
            if not art or not art.get("path"):
                raise DDBenchError(f"run {rec.run_id} records no distilled set for seed {seed}; rerun it with "
                                   "`ddbench run` to make one")
            folder = Path(art["path"].replace("$DDBENCH_HOME", str(_home())))
            images = folder / "images.safetensors"
            if not images.is_file() or not (folder / "manifest.json").is_file():
                raise DDBenchError(f"the distilled set of run {rec.run_id} seed {seed} is gone from {folder} (the cache "
                                   "was cleared?); rerun the same `ddbench run` command to make it again, then submit")
            if sha256_file(images) != art.get("sha256"):
                raise DDBenchError(f"the distilled set at {folder} is not the one run {rec.run_id} seed {seed} was "
                                   "scored on (its sha256 differs); rerun the run, then submit")
            base = f"distilled/{rec.run_id}/seed{seed}"
            members.append((f"{base}/images.safetensors", images.read_bytes()))
            members.append((f"{base}/manifest.json", (folder / "manifest.json").read_bytes()))
            if (folder / "extras.json").is_file():
                members.append((f"{base}/extras.json", _public((folder / "extras.json").read_text()).encode()))
    members.insert(0, (ENVIRONMENT, json.dumps(environment_of(records), indent=2, sort_keys=True,
                                               default=str).encode()))
    manifest = {"schema_version": BUNDLE_SCHEMA, "kind": BUNDLE_KIND, "ddbench": __version__,
                "created_at": _now(), "runs": [r.run_id for r in records],
                "members": [{"path": p, "size": len(b), "sha256": sha256_bytes(b), "kind": kind_of(p)}
                            for p, b in members]}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
        for path, data in members:
            zf.writestr(path, data)
    tmp.replace(out)
    return manifest


def _home() -> Path:
    from . import paths

    return paths.home()


# ----------------------------------------------------------------------------- reading


@dataclasses.dataclass
class Bundle:
    """A bundle whose structure, hashes and member contents passed every check."""

    path: Path
    manifest: dict[str, Any]
    #: member path -> bytes (everything; read with caps)
    data: dict[str, bytes]
    records: list[RunRecord]
    environment: dict[str, Any]
    sha256: str

    def json(self, path: str) -> Any:
        return json.loads(self.data[path])

    def distilled(self, run_id: str, seed: int):
        """The distilled set of ``run_id``'s ``seed``, loaded from the checked bytes (safetensors
        and JSON only)."""
        from safetensors.torch import load

        from .distilled import SCHEMA_VERSION, DistilledSet

        base = f"distilled/{run_id}/seed{seed}"
        m = self.json(f"{base}/manifest.json")
        try:
            t = load(self.data[f"{base}/images.safetensors"])
        except Exception as e:  # safetensors raises its own error types
            raise BundleError(f"{base}/images.safetensors does not load ({e})") from None
        if not isinstance(m, dict) or m.get("schema_version") != SCHEMA_VERSION:
            raise BundleError(f"{base}/manifest.json is not a distilled-set manifest of schema {SCHEMA_VERSION}")
        try:
            return DistilledSet(images=t["images"], targets=t["targets"], label_kind=m["label_kind"],
                                recipe=m["recipe"], pixel_space=m["pixel_space"], mean=tuple(m["mean"]),
                                std=tuple(m["std"]), num_classes=m["num_classes"], source=m["source"],
                                resolution=m["resolution"], method=m["method"], provenance=m["provenance"],
                                value_range=m.get("value_range", (0.0, 1.0)))
        except (KeyError, TypeError, ValueError, DDBenchError) as e:
            raise BundleError(f"the distilled set {base} is invalid ({e})") from None

    def extras(self, run_id: str, seed: int) -> dict[str, Any]:
        path = f"distilled/{run_id}/seed{seed}/extras.json"
        value = self.json(path) if path in self.data else {}
        return value if isinstance(value, dict) else {}


def _check_name(name: str) -> None:
    if not name or "\x00" in name:
        raise BundleError(f"member {name!r} has an empty or binary name")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise BundleError(f"member {name!r} has an absolute path; a bundle holds relative paths only")
    parts = re.split(r"[\\/]", name)
    if ".." in parts:
        raise BundleError(f"member {name!r} points outside the bundle (path traversal: '..')")
    if "\\" in name or any(p in ("", ".") for p in parts):
        raise BundleError(f"member {name!r} is not a plain relative path")


def _check_info(info: zipfile.ZipInfo, limits: Limits) -> str:
    """Check one directory entry before reading it; return its kind."""
    name = info.filename
    _check_name(name)
    mode = info.external_attr >> 16
    if info.is_dir():
        raise BundleError(f"member {name!r} is a directory entry; a bundle holds files only")
    if mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        what = "a symlink" if stat.S_ISLNK(mode) else "not a regular file"
        raise BundleError(f"member {name!r} is {what}; a bundle holds regular files only")
    if info.flag_bits & 0x1:
        raise BundleError(f"member {name!r} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise BundleError(f"member {name!r} uses compression method {info.compress_type}; only stored and deflated "
                          "members are read")
    if name == MANIFEST:
        kind = "bundle-manifest"
    else:
        kind = kind_of(name)
        if kind is None:
            low = name.lower()
            if low.endswith((".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".npy", ".npz", ".joblib")):
                raise BundleError(f"member {name!r} is a pickle-capable format; a bundle holds JSON and safetensors only "
                                  "(no pickle)")
            if low.endswith((".py", ".pyc", ".so", ".sh", ".exe", ".dll", ".whl", ".egg")):
                raise BundleError(f"member {name!r} is code; a bundle holds JSON and safetensors only")
            raise BundleError(f"member {name!r} is not an allowed member (records/<run_id>.json, "
                              "distilled/<run_id>/seed<k>/{images.safetensors,manifest.json,extras.json}, "
                              "environment.json)")
    cap = limits.tensor_bytes if kind == "images" else limits.json_bytes
    if info.file_size > cap:
        raise BundleError(f"member {name!r} declares {info.file_size} bytes, over the limit of {cap} for its kind")
    if info.file_size > limits.ratio_from and info.file_size > limits.max_ratio * max(1, info.compress_size):
        raise BundleError(f"member {name!r} expands {info.file_size / max(1, info.compress_size):.0f}-fold "
                          f"(limit {limits.max_ratio:.0f}); refusing a possible zip bomb")
    return kind


def _read_capped(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    """The member's bytes, never more than ``cap`` whatever the header says."""
    chunks, total = [], 0
    try:
        with zf.open(info) as f:
            while True:
                chunk = f.read(min(1 << 20, cap + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
                if total > cap:
                    raise BundleError(f"member {info.filename!r} holds more than {cap} bytes (its header declares "
                                      f"{info.file_size}); refusing a possible zip bomb")
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        raise BundleError(f"member {info.filename!r} cannot be read ({e}); the bundle is truncated or corrupt") from None
    data = b"".join(chunks)
    if len(data) != info.file_size:
        raise BundleError(f"member {info.filename!r} holds {len(data)} bytes but its header declares {info.file_size}")
    return data


def _check_json(name: str, data: bytes) -> Any:
    if data[:1] == b"\x80":
        raise BundleError(f"member {name!r} is a pickle (it starts with pickle's protocol opcode), not JSON")
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise BundleError(f"member {name!r} is not valid JSON ({type(e).__name__}: {str(e)[:120]})") from None


def check_safetensors(name: str, data: bytes, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Parse a safetensors header with a bounded length and check that every tensor's bytes lie
    inside the file and that the data section is covered exactly (a truncated file fails)."""
    if len(data) < 8:
        raise BundleError(f"member {name!r} is truncated: {len(data)} bytes, too short for a safetensors header")
    (n,) = struct.unpack("<Q", data[:8])
    if n > limits.safetensors_header:
        raise BundleError(f"member {name!r} declares a {n}-byte safetensors header (limit {limits.safetensors_header})")
    if 8 + n > len(data):
        raise BundleError(f"member {name!r} is truncated: its safetensors header needs {n} bytes, the file has "
                          f"{len(data) - 8}")
    header = _check_json(name + " (safetensors header)", data[8:8 + n])
    if not isinstance(header, dict):
        raise BundleError(f"member {name!r} has a safetensors header that is not an object")
    body = len(data) - 8 - n
    spans = []
    for key, spec in header.items():
        if key == "__metadata__":
            continue
        if key not in ("images", "targets"):
            raise BundleError(f"member {name!r} holds tensor {key!r}; a distilled set holds 'images' and 'targets'")
        try:
            dtype, shape, (a, b) = spec["dtype"], [int(x) for x in spec["shape"]], spec["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise BundleError(f"member {name!r}: tensor {key!r} has a malformed header entry") from None
        if dtype not in _DTYPES or any(x < 0 for x in shape):
            raise BundleError(f"member {name!r}: tensor {key!r} has dtype {dtype!r} / shape {shape}, not allowed")
        if not (isinstance(a, int) and isinstance(b, int) and 0 <= a <= b):
            raise BundleError(f"member {name!r}: tensor {key!r} has bad offsets {spec['data_offsets']}")
        if b > body:
            raise BundleError(f"member {name!r} is truncated: tensor {key!r} ends at byte {b} of a {body}-byte data "
                              "section")
        if b - a != math.prod(shape) * _DTYPES[dtype]:
            raise BundleError(f"member {name!r}: tensor {key!r} spans {b - a} bytes but its shape {shape} needs "
                              f"{math.prod(shape) * _DTYPES[dtype]}")
        spans.append((a, b))
    if {"images", "targets"} - set(header):
        raise BundleError(f"member {name!r} lacks 'images' or 'targets'")
    end = 0
    for a, b in sorted(spans):
        if a != end:
            raise BundleError(f"member {name!r}: its tensors overlap or leave a gap")
        end = b
    if end != body:
        raise BundleError(f"member {name!r} has {body - end} bytes after its last tensor (or is truncated)")
    return header


def read_bundle(path: Path, limits: Limits = DEFAULT_LIMITS,
                checked: Callable[[str, str], None] | None = None) -> Bundle:
    """Open and check a bundle without trusting it; raise :class:`BundleError` (one line, the
    reason) on anything malformed or tampered. ``checked(what, detail)`` is told each check
    that passed (for the verdict table)."""
    note = checked or (lambda what, detail: None)
    path = Path(path)
    if not path.is_file():
        raise DDBenchError(f"no bundle at {path}; give the file `ddbench leaderboard submit` wrote")
    whole = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            whole.update(chunk)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise BundleError(f"{path} is not a readable zip ({e}); the bundle is truncated or not a bundle") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.members:
            raise BundleError(f"the bundle has {len(infos)} members (limit {limits.members})")
        names = [i.filename for i in infos]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise BundleError(f"the bundle holds {dupes[0]!r} more than once; a member name must be unique")
        kinds = {i.filename: _check_info(i, limits) for i in infos}
        total = sum(i.file_size for i in infos)
        if total > limits.total_bytes:
            raise BundleError(f"the bundle declares {total} bytes uncompressed (limit {limits.total_bytes})")
        if MANIFEST not in kinds:
            raise BundleError(f"the bundle has no {MANIFEST}; it was not written by `ddbench leaderboard submit`")
        note("zip directory", f"{len(infos)} members: names, types and sizes within limits")
        by_name = {i.filename: i for i in infos}
        manifest = _check_json(MANIFEST, _read_capped(zf, by_name[MANIFEST], limits.json_bytes))
        if not isinstance(manifest, dict) or manifest.get("kind") != BUNDLE_KIND:
            raise BundleError(f"{MANIFEST} is not a ddbench submission manifest")
        if manifest.get("schema_version") != BUNDLE_SCHEMA:
            raise BundleError(f"{MANIFEST} has schema {manifest.get('schema_version')!r}; this ddbench reads schema "
                              f"{BUNDLE_SCHEMA} (upgrade ddbench?)")
        listed = manifest.get("members")
        if not isinstance(listed, list) or not all(isinstance(m, dict) for m in listed):
            raise BundleError(f"{MANIFEST} has no list of members")
        entries: dict[str, dict[str, Any]] = {}
        for m in listed:
            p = m.get("path")
            if not isinstance(p, str) or p in entries or p == MANIFEST:
                raise BundleError(f"{MANIFEST} lists member {p!r} twice, or lists an invalid path")
            entries[p] = m
        unlisted = sorted(set(kinds) - set(entries) - {MANIFEST})
        if unlisted:
            raise BundleError(f"member {unlisted[0]!r} is not in {MANIFEST} (added after the bundle was made)")
        missing = sorted(set(entries) - set(kinds))
        if missing:
            raise BundleError(f"{MANIFEST} lists {missing[0]!r}, which the bundle does not hold")
        data: dict[str, bytes] = {}
        for name, m in entries.items():
            info = by_name[name]
            kind = kinds[name]
            if m.get("kind") != kind:
                raise BundleError(f"{MANIFEST} says {name!r} is a {m.get('kind')!r}, but its path makes it a {kind!r}")
            if m.get("size") != info.file_size:
                raise BundleError(f"{MANIFEST} says {name!r} has {m.get('size')} bytes, the zip holds "
                                  f"{info.file_size}: the manifest does not match the bundle (tampered)")
            blob = _read_capped(zf, info, limits.tensor_bytes if kind == "images" else limits.json_bytes)
            if sha256_bytes(blob) != m.get("sha256"):
                raise BundleError(f"{name!r} does not match its sha256 in {MANIFEST}: the member was changed after "
                                  "the bundle was made (tampered)")
            if kind == "images":
                check_safetensors(name, blob, limits)
            else:
                _check_json(name, blob)
            data[name] = blob
    note("manifest hashes", f"{len(entries)} members match their size and sha256")
    note("member types", "JSON parses, safetensors headers parse and cover their files; no pickle, no code")
    environment = json.loads(data[ENVIRONMENT]) if ENVIRONMENT in data else {}
    if ENVIRONMENT not in data or not isinstance(environment, dict):
        raise BundleError(f"the bundle has no {ENVIRONMENT} object")
    records = []
    for name in sorted(n for n, k in kinds.items() if k == "record"):
        d = json.loads(data[name])
        try:
            rec = RunRecord.from_dict(d)
        except (KeyError, TypeError, ValueError, AttributeError, DDBenchError) as e:
            raise BundleError(f"{name!r} is not a valid run record ({e})") from None
        if f"records/{rec.run_id}.json" != name:
            raise BundleError(f"{name!r} holds run {rec.run_id!r}; the file name must be its run id")
        if rec.status != "finished":
            raise BundleError(f"run {rec.run_id} is {rec.status}; a bundle holds finished runs only")
        records.append(rec)
    if not records:
        raise BundleError("the bundle holds no run records")
    expected = {f"distilled/{r.run_id}/seed{s}/{f}" for r in records for s in r.seeds
                for f in ("images.safetensors", "manifest.json")}
    for name in sorted(expected - set(data)):
        raise BundleError(f"the bundle lacks {name}, which its record needs")
    stray = sorted(n for n, k in kinds.items() if k in ("images", "distilled-manifest", "extras")
                   and "/".join(n.split("/")[:3]) + "/images.safetensors" not in expected)
    if stray:
        raise BundleError(f"member {stray[0]!r} belongs to no run seed in the bundle's records")
    for rec in records:
        for seed in rec.seeds:
            want = (rec.artifacts.get(f"distilled/seed{seed}") or {}).get("sha256")
            got = sha256_bytes(data[f"distilled/{rec.run_id}/seed{seed}/images.safetensors"])
            if want != got:
                raise BundleError(f"run {rec.run_id} seed {seed}: the distilled images' sha256 {got[:12]}… is not the "
                                  f"{str(want)[:12]}… its record was scored on (the distilled set was swapped)")
    note("distilled sets", f"{sum(len(r.seeds) for r in records)} sets match the sha256 in their records")
    return Bundle(path=path, manifest=manifest, data=data, records=records, environment=environment,
                  sha256=whole.hexdigest())
