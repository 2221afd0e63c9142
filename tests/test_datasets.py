"""The built-in dataset plugins: the .npz sample format and the official release layouts,
each on a tiny fabricated copy in tmp_path; plus the sample data itself (``realdata``)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ddbench import plugins
from ddbench.data import clear_memo
from ddbench.errors import DataError
from ddbench_plugins.datasets import BUILTIN, NpzDataset, _common
from ddbench_plugins.datasets.npz import content_sha256

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def use_data(monkeypatch, *folders: Path) -> None:
    monkeypatch.setenv("DDBENCH_DATA", os.pathsep.join(str(f) for f in folders))
    plugins.reset()


def dataset(name: str):
    return plugins.get_dataset(name)


# -- fixture writers --------------------------------------------------------------------

def npz_arrays(classes=("a", "b", "c"), n_train=4, n_test=2, size=8, seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    k = len(classes)
    return {
        "x_train": rng.integers(0, 256, (k * n_train, size, size, 3), dtype=np.uint8),
        "y_train": np.repeat(np.arange(k, dtype=np.int64), n_train),
        "x_test": rng.integers(0, 256, (k * n_test, size, size, 3), dtype=np.uint8),
        "y_test": np.repeat(np.arange(k, dtype=np.int64), n_test),
        "class_names": np.array(classes),
        "source_repo": np.array("someone/somewhere"),
    }


def write_npz(path: Path, **overrides) -> dict[str, np.ndarray]:
    arrays = npz_arrays()
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return arrays


def save_image(path: Path, size=(12, 10), seed=0) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = size
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)


def make_cifar(root: Path, hundred: bool = False) -> Path:
    rng = np.random.default_rng(0)
    k = 4
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    key = "fine_labels" if hundred else "labels"

    def batch(n, name):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, key: [i % k for i in range(n)]}, f)
        return data

    if hundred:
        batch(8, "train")
        batch(4, "test")
        with open(folder / "meta", "wb") as f:
            pickle.dump({"fine_label_names": [f"fine{i}" for i in range(k)], "coarse_label_names": ["c"]}, f)
    else:
        for i in range(1, 6):
            batch(4, f"data_batch_{i}")
        batch(4, "test_batch")
        with open(folder / "batches.meta", "wb") as f:
            pickle.dump({"label_names": [f"class{i}" for i in range(k)]}, f)
    return folder


@pytest.fixture
def no_md5(monkeypatch):
    """The fabricated files cannot match torchvision's md5s: skip the check."""
    import torchvision.datasets.cifar
    import torchvision.datasets.flowers102

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
    monkeypatch.setattr(torchvision.datasets.flowers102, "check_integrity", lambda *a, **k: True)


def make_tinyimagenet(root: Path, size=16) -> Path:
    d = root / "tiny-imagenet-200"
    wnids = ["n02", "n01"]  # deliberately unsorted: labels follow sorted order
    d.mkdir(parents=True)
    (d / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (d / "words.txt").write_text("n01\tgoldfish, Carassius auratus\nn02\tstork\nn99\tunused\n")
    for j, w in enumerate(wnids):
        for i in range(3):
            save_image(d / "train" / w / "images" / f"{w}_{i}.JPEG", (size, size), seed=10 * j + i)
    lines = []
    for i, w in enumerate(["n01", "n02", "n02"]):
        save_image(d / "val" / "images" / f"val_{i}.JPEG", (size, size), seed=100 + i)
        lines.append(f"val_{i}.JPEG\t{w}\t0\t0\t{size}\t{size}")
    (d / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return d


def make_imagenet64(root: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, (10, 64, 64, 3), dtype=np.uint8)
    flat = hwc.transpose(0, 3, 1, 2).reshape(10, -1)
    (root / "Imagenet64_train_npz").mkdir(parents=True)
    (root / "Imagenet64_val").mkdir(parents=True)
    # batch 10 sorts before batch 2 as text: the loader must order them numerically
    np.savez(root / "Imagenet64_train_npz" / "train_data_batch_2.npz", data=flat[3:6], labels=[2, 3, 1])
    np.savez(root / "Imagenet64_train_npz" / "train_data_batch_10.npz", data=flat[6:8], labels=[1, 2])
    np.savez(root / "Imagenet64_train_npz" / "train_data_batch_1.npz", data=flat[:3], labels=[1, 2, 3])
    np.savez(root / "Imagenet64_val" / "val_data.npz", data=flat[8:], labels=[3, 1])
    return root, hwc


def make_cub(root: Path) -> Path:
    d = root / "CUB_200_2011"
    classes = ["001.Black_footed_Albatross", "002.Laysan_Albatross"]
    (d / "images").mkdir(parents=True)
    (d / "classes.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    images, labels, split = [], [], []
    img_id = 0
    for c, cname in enumerate(classes):
        for i in range(4):
            img_id += 1
            rel = f"{cname}/img_{i}.jpg"
            save_image(d / "images" / rel, (30, 40), seed=img_id)
            images.append(f"{img_id} {rel}")
            labels.append(f"{img_id} {c + 1}")
            split.append(f"{img_id} {1 if i < 3 else 0}")  # official: 1 = train
    (d / "images.txt").write_text("\n".join(images) + "\n")
    (d / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (d / "train_test_split.txt").write_text("\n".join(split) + "\n")
    return d


def make_dogs(root: Path, lists_folder: bool = True) -> Path:
    import scipy.io as sio

    d = root / "StanfordDogs"
    dirs = ["n02085620-Chihuahua", "n02085782-Japanese_spaniel"]
    files = {"train": [], "test": []}
    for c, dname in enumerate(dirs):
        for i in range(3):
            rel = f"{dname}/{dname.split('-')[0]}_{i}.jpg"
            save_image(d / "Images" / rel, (20, 25), seed=c * 10 + i)
            files["train" if i < 2 else "test"].append((rel, c + 1))
    lists = d / "lists" if lists_folder else d
    lists.mkdir(parents=True, exist_ok=True)
    for split, rows in files.items():
        sio.savemat(lists / f"{split}_list.mat", {
            "file_list": np.array([r[0] for r in rows], dtype=object).reshape(-1, 1),
            "labels": np.array([[r[1]] for r in rows], dtype=np.uint8)})
    return d


def make_aircraft(root: Path) -> Path:
    d = root / "fgvc-aircraft-2013b"
    data = d / "data"
    (data / "images").mkdir(parents=True)
    variants = ["707-320", "A300B4"]
    (data / "variants.txt").write_text("\n".join(variants) + "\n")
    rows = {"trainval": [], "test": []}
    for i in range(6):
        name = f"{1000000 + i}"
        save_image(data / "images" / f"{name}.jpg", (30, 50), seed=i)
        rows["trainval" if i < 4 else "test"].append(f"{name} {variants[i % 2]}")
    for split, lines in rows.items():
        (data / f"images_variant_{split}.txt").write_text("\n".join(lines) + "\n")
    return d


def make_cars(root: Path) -> Path:
    import scipy.io as sio

    d = root / "stanford_cars"
    (d / "devkit").mkdir(parents=True)
    sio.savemat(d / "devkit" / "cars_meta.mat",
                {"class_names": np.array(["AM General Hummer", "Acura RL"], dtype=object)})
    for split, folder, annos in (("train", "cars_train", d / "devkit" / "cars_train_annos.mat"),
                                 ("test", "cars_test", d / "cars_test_annos_withlabels.mat")):
        rows = []
        for i in range(4 if split == "train" else 2):
            fname = f"{i:05d}.jpg"
            save_image(d / folder / fname, (24, 36), seed=i)
            rows.append((fname, i % 2 + 1))
        sio.savemat(annos, {"annotations": np.array(rows, dtype=[("fname", "O"), ("class", "O")])})
    return d


def make_flowers102(root: Path) -> Path:
    import scipy.io as sio

    d = root / "flowers-102"
    for i in range(1, 9):
        save_image(d / "jpg" / f"image_{i:05d}.jpg", (30, 20), seed=i)
    sio.savemat(d / "imagelabels.mat", {"labels": np.array([1, 2, 1, 2, 1, 2, 1, 2])})
    sio.savemat(d / "setid.mat", {"trnid": np.array([1, 2]), "valid": np.array([3, 4]),
                                  "tstid": np.array([5, 6, 7, 8])})
    return d


# -- registration and discovery -----------------------------------------------------------

def test_registration_imports_no_torch_or_numpy():
    code = ("import sys, ddbench_plugins.datasets as d; found = []; d.ddbench_register_datasets(found.append); "
            "[x.locate() for x in found]; assert len(found) >= len(d.BUILTIN); "
            "bad = [m for m in ('torch', 'torchvision', 'numpy', 'PIL') if m in sys.modules]; "
            "assert not bad, bad")
    env = {**os.environ, "DDBENCH_DISABLE_PLUGINS": "1"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_builtins_are_registered_and_report_where_they_looked(tmp_path, monkeypatch):
    use_data(monkeypatch, tmp_path / "a", tmp_path / "b")
    reg = plugins.registry("dataset")
    for cls in BUILTIN:
        ds = reg.get(cls.name)
        assert ds.locate() is None
        searched = ds.searched()
        assert any(str(tmp_path / "a") in s for s in searched)
        assert any(str(tmp_path / "b") in s for s in searched)
        assert any(str(tmp_path / "home" / "data") in s for s in searched)
        assert "DDBENCH_DATA" in ds.how_to_get()
        assert ds.description and ds.resolution in (32, 64)


@pytest.mark.parametrize("name", [cls.name for cls in BUILTIN])
def test_missing_dataset_error_lists_every_folder_and_how_to_get_it(name, tmp_path, monkeypatch):
    use_data(monkeypatch, tmp_path / "first", tmp_path / "second")
    with pytest.raises(DataError) as e:
        dataset(name).load()
    msg = str(e.value)
    assert f"{name!r} was not found" in msg
    for folder in (tmp_path / "first", tmp_path / "second", tmp_path / "home" / "data"):
        assert str(folder) in msg
    assert "DDBENCH_DATA" in msg
    if dataset(name).can_download:
        assert "DDBENCH_DOWNLOAD=1" in msg


def test_npz_files_become_datasets_first_folder_wins(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    write_npz(a / "tiny.npz")
    write_npz(b / "tiny.npz", class_names=np.array(["x", "y", "z"]))
    write_npz(b / "other.npz")
    write_npz(tmp_path / "home" / "data" / "athome.npz")
    use_data(monkeypatch, a, b)
    reg = plugins.registry("dataset")
    tiny = reg.get("tiny")
    assert isinstance(tiny, NpzDataset)
    assert tiny.locate() == str(a / "tiny.npz")
    assert tiny.found_via == _common.VIA_ENV
    assert tiny.shadowed == [b / "tiny.npz"]
    assert tiny.load().class_names == ["a", "b", "c"]
    assert reg.get("other").locate() == str(b / "other.npz")
    assert reg.get("athome").found_via == _common.VIA_HOME


def test_shared_data_fallback_only_without_ddbench_data(tmp_path, monkeypatch):
    work = tmp_path / "repo"
    work.mkdir()
    write_npz(tmp_path / "shared" / "data" / "sample.npz")
    monkeypatch.chdir(work)
    plugins.reset()
    ds = dataset("sample")
    assert ds.locate() == str(work.parent / "shared" / "data" / "sample.npz")
    assert ds.found_via == _common.VIA_CWD
    use_data(monkeypatch, tmp_path / "elsewhere")
    assert "sample" not in plugins.registry("dataset")


def test_repository_fallback_folder_is_next_to_the_checkout(monkeypatch):
    import ddbench

    folders = dict((via, p) for p, via in _common.search_folders())
    repo_root = Path(ddbench.__file__).resolve().parents[1]
    if _common.VIA_REPO in folders:  # absent when it is the same folder as the cwd fallback
        assert folders[_common.VIA_REPO] == repo_root.parent / "shared" / "data"
    monkeypatch.setenv("DDBENCH_DATA", "/nonexistent")
    assert [via for _, via in _common.search_folders()] == [_common.VIA_ENV, _common.VIA_HOME]


def test_npz_with_builtin_name_replaces_the_builtin_loader(tmp_path, monkeypatch):
    write_npz(tmp_path / "cifar10.npz")
    use_data(monkeypatch, tmp_path)
    ds = dataset("cifar10")
    assert isinstance(ds, NpzDataset) and ds.replaces == "cifar10"
    assert "instead of the built-in" in ds.description


# -- the .npz format ------------------------------------------------------------------------

def test_npz_load(tmp_path, monkeypatch):
    arrays = write_npz(tmp_path / "tiny.npz")
    use_data(monkeypatch, tmp_path)
    raw = dataset("tiny").load()
    assert raw.x_train.dtype == np.uint8 and raw.x_train.shape == (12, 8, 8, 3)
    assert raw.y_train.dtype == np.int64 and raw.y_test.shape == (6,)
    np.testing.assert_array_equal(raw.x_train, arrays["x_train"])
    np.testing.assert_array_equal(raw.y_test, arrays["y_test"])
    assert raw.class_names == ["a", "b", "c"]
    assert raw.info["source_repo"] == "someone/somewhere"
    assert raw.info["location"] == str(tmp_path / "tiny.npz")


def test_content_sha256_scheme():
    import hashlib

    arrays = {"b": np.arange(3, dtype=np.int64), "a": np.array(["x"])}
    h = hashlib.sha256()
    for k in ("a", "b"):
        h.update(k.encode() + str(arrays[k].dtype).encode() + str(arrays[k].shape).encode() + arrays[k].tobytes())
    assert content_sha256(arrays) == h.hexdigest()


@pytest.mark.parametrize("overrides, expected", [
    ({"x_train": np.zeros((12, 8, 8, 3), np.float32)}, "x_train has dtype float32; expected uint8"),
    ({"y_test": np.zeros(6, np.int32)}, "y_test has dtype int32; expected int64"),
    ({"y_train": np.full(12, 3, np.int64)}, "outside [0, 3)"),
    ({"y_test": np.full(6, -1, np.int64)}, "outside [0, 3)"),
    ({"y_train": np.zeros(11, np.int64)}, "x_train has 12 images but y_train has 11 labels"),
    ({"x_test": np.zeros((6, 8, 8), np.uint8)}, "expected (N, H, W, 3)"),
    ({"x_test": np.zeros((6, 8, 8, 1), np.uint8)}, "expected (N, H, W, 3)"),
    ({"class_names": None}, "missing key(s) class_names"),
    ({"class_names": np.array([[1, 2, 3]])}, "class_names has dtype"),
])
def test_npz_validation_errors(tmp_path, monkeypatch, overrides, expected):
    write_npz(tmp_path / "bad.npz", **overrides)
    use_data(monkeypatch, tmp_path)
    with pytest.raises(DataError) as e:
        dataset("bad").load()
    assert str(tmp_path / "bad.npz") in str(e.value)
    assert expected in str(e.value)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "corrupt_member"])
def test_corrupt_npz_says_redownload_or_delete(tmp_path, monkeypatch, damage):
    path = tmp_path / "broken.npz"
    write_npz(path, x_train=np.random.default_rng(1).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8))
    blob = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(blob[: len(blob) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a zip file at all" * 10)
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # flip bytes inside the compressed data, keep the zip directory intact
        mid = len(blob) // 3
        path.write_bytes(blob[:mid] + bytes(b ^ 0xFF for b in blob[mid:mid + 200]) + blob[mid + 200:])
    use_data(monkeypatch, tmp_path)
    with pytest.raises(DataError) as e:
        dataset("broken").load()
    assert str(path) in str(e.value)
    assert "re-download or delete it" in str(e.value)


def test_npz_removed_after_registration(tmp_path, monkeypatch):
    write_npz(tmp_path / "gone.npz")
    use_data(monkeypatch, tmp_path)
    ds = dataset("gone")
    (tmp_path / "gone.npz").unlink()
    assert ds.locate() is None
    with pytest.raises(DataError, match="was not found"):
        ds.load()


# -- official layouts -----------------------------------------------------------------------

def test_cifar10_layout(tmp_path, monkeypatch, no_md5):
    folder = make_cifar(tmp_path)
    use_data(monkeypatch, tmp_path)
    ds = dataset("cifar10")
    assert ds.locate() == str(folder)
    raw = ds.load()
    assert raw.x_train.shape == (20, 32, 32, 3) and raw.x_train.dtype == np.uint8
    assert raw.x_test.shape == (4, 32, 32, 3)
    assert raw.y_train.dtype == np.int64 and set(raw.y_train.tolist()) == {0, 1, 2, 3}
    assert raw.class_names == ["class0", "class1", "class2", "class3"]
    with open(folder / "data_batch_1", "rb") as f:
        first = pickle.load(f)["data"][0]
    np.testing.assert_array_equal(raw.x_train[0], first.reshape(3, 32, 32).transpose(1, 2, 0))
    assert raw.info["found_via"] == _common.VIA_ENV


def test_cifar100_layout_in_a_named_subfolder(tmp_path, monkeypatch, no_md5):
    folder = make_cifar(tmp_path / "cifar100", hundred=True)
    use_data(monkeypatch, tmp_path)
    raw = dataset("cifar100").load()
    assert dataset("cifar100").locate() == str(folder)
    assert raw.x_train.shape == (8, 32, 32, 3) and raw.x_test.shape == (4, 32, 32, 3)
    assert raw.class_names == ["fine0", "fine1", "fine2", "fine3"]
    assert raw.y_test.tolist() == [0, 1, 2, 3]


def test_cifar_checksum_failure_is_a_data_error(tmp_path, monkeypatch):
    make_cifar(tmp_path)  # its files do not match torchvision's md5s
    use_data(monkeypatch, tmp_path)
    with pytest.raises(DataError, match="re-download or delete it"):
        dataset("cifar10").load()


def test_tinyimagenet_layout(tmp_path, monkeypatch):
    folder = make_tinyimagenet(tmp_path)
    use_data(monkeypatch, tmp_path)
    ds = dataset("tinyimagenet")
    assert ds.locate() == str(folder)
    raw = ds.load()
    assert raw.x_train.shape == (6, 16, 16, 3) and raw.x_train.dtype == np.uint8
    assert raw.y_train.tolist() == [0, 0, 0, 1, 1, 1]  # sorted wnids: n01 first
    assert raw.x_test.shape == (3, 16, 16, 3) and raw.y_test.tolist() == [0, 1, 1]
    assert raw.class_names == ["goldfish", "stork"]
    assert raw.info["wnids"] == ["n01", "n02"]


def test_tinyimagenet_unreadable_image(tmp_path, monkeypatch):
    folder = make_tinyimagenet(tmp_path)
    (folder / "val" / "images" / "val_1.JPEG").write_bytes(b"\xff\xd8 broken jpeg")
    use_data(monkeypatch, tmp_path)
    with pytest.raises(DataError, match="re-download or delete it"):
        dataset("tinyimagenet").load()


def test_imagenet64_layout(tmp_path, monkeypatch):
    root, hwc = make_imagenet64(tmp_path / "imagenet64")
    use_data(monkeypatch, tmp_path)
    ds = dataset("imagenet64")
    assert ds.locate() == str(root)
    raw = ds.load()
    assert raw.x_train.shape == (8, 64, 64, 3) and raw.x_train.dtype == np.uint8
    np.testing.assert_array_equal(raw.x_train, hwc[:8])  # batches 1, 2, 10 in numeric order
    assert raw.y_train.tolist() == [0, 1, 2, 1, 2, 0, 0, 1]  # 1-based -> 0-based
    np.testing.assert_array_equal(raw.x_test, hwc[8:])
    assert raw.y_test.tolist() == [2, 0]
    assert len(raw.class_names) == 1000 and raw.class_names[0] == "class_0000"


def test_imagenet64_class_names_from_map_clsloc(tmp_path, monkeypatch):
    root, _ = make_imagenet64(tmp_path)
    (root / "map_clsloc.txt").write_text("".join(f"n{i:08d} {i + 1} name_{i}\n" for i in range(1000)))
    use_data(monkeypatch, tmp_path)
    assert dataset("imagenet64").load().class_names[:2] == ["name_0", "name_1"]


def test_imagenet64_bad_batch(tmp_path, monkeypatch):
    root, _ = make_imagenet64(tmp_path)
    np.savez(root / "Imagenet64_val" / "val_data.npz", data=np.zeros((2, 100), np.uint8), labels=[1, 2])
    use_data(monkeypatch, tmp_path)
    with pytest.raises(DataError, match="expected uint8 \\(N, 12288\\)"):
        dataset("imagenet64").load()


def test_cub_layout_flag_one_is_train(tmp_path, monkeypatch):
    folder = make_cub(tmp_path)
    use_data(monkeypatch, tmp_path)
    ds = dataset("cub2011")
    assert ds.locate() == str(folder)
    raw = ds.load()
    assert raw.x_train.shape == (6, 64, 64, 3) and raw.x_test.shape == (2, 64, 64, 3)
    assert raw.y_train.tolist() == [0, 0, 0, 1, 1, 1] and raw.y_test.tolist() == [0, 1]
    assert raw.class_names == ["Black_footed_Albatross", "Laysan_Albatross"]
    assert raw.info["load_resolution"] == 64


@pytest.mark.parametrize("lists_folder", [True, False])
def test_dogs_layout(tmp_path, monkeypatch, lists_folder):
    folder = make_dogs(tmp_path, lists_folder)
    use_data(monkeypatch, tmp_path)
    ds = dataset("dogs")
    assert ds.locate() == str(folder)
    raw = ds.load()
    assert raw.x_train.shape == (4, 64, 64, 3) and raw.x_test.shape == (2, 64, 64, 3)
    assert raw.y_train.tolist() == [0, 0, 1, 1] and raw.y_test.tolist() == [0, 1]
    assert raw.class_names == ["Chihuahua", "Japanese_spaniel"]


def test_dogs_without_scipy_says_pip_install_scipy(tmp_path, monkeypatch):
    make_dogs(tmp_path)
    use_data(monkeypatch, tmp_path)
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(DataError, match=r"pip install 'ddbench\[datasets\]'"):
        dataset("dogs").load()


def test_aircraft_layout(tmp_path, monkeypatch):
    folder = make_aircraft(tmp_path)
    use_data(monkeypatch, tmp_path)
    ds = dataset("aircraft")
    assert ds.locate() == str(folder)
    raw = ds.load()
    assert raw.x_train.shape == (4, 64, 64, 3) and raw.x_test.shape == (2, 64, 64, 3)
    assert raw.y_train.tolist() == [0, 1, 0, 1] and raw.y_test.tolist() == [0, 1]
    assert raw.class_names == ["707-320", "A300B4"]


def test_cars_layout(tmp_path, monkeypatch):
    folder = make_cars(tmp_path)
    use_data(monkeypatch, tmp_path)
    ds = dataset("cars")
    assert ds.locate() == str(folder)
    raw = ds.load()
    assert raw.x_train.shape == (4, 64, 64, 3) and raw.x_test.shape == (2, 64, 64, 3)
    assert raw.y_train.tolist() == [0, 1, 0, 1] and raw.y_test.tolist() == [0, 1]
    assert raw.class_names == ["AM General Hummer", "Acura RL"]
    assert not ds.can_download and "cannot be downloaded" in ds.how_to_get()


def test_flowers102_layout_train_plus_val(tmp_path, monkeypatch, no_md5):
    folder = make_flowers102(tmp_path)
    use_data(monkeypatch, tmp_path)
    ds = dataset("flowers102")
    assert ds.locate() == str(folder)
    raw = ds.load()
    assert raw.x_train.shape == (4, 64, 64, 3) and raw.x_test.shape == (4, 64, 64, 3)
    assert raw.y_train.tolist() == [0, 1, 0, 1] and raw.y_test.tolist() == [0, 1, 0, 1]
    assert raw.class_names[:2] == ["pink primrose", "hard-leaved pocket orchid"]


def test_download_only_when_asked(tmp_path, monkeypatch):
    calls = []
    cls = type(dataset("cub2011"))

    def fake_download(self, root):
        calls.append(root)
        make_cub(root)

    monkeypatch.setattr(cls, "_download", fake_download)
    use_data(monkeypatch, tmp_path / "empty")
    with pytest.raises(DataError):
        dataset("cub2011").load()
    assert calls == []
    monkeypatch.setenv("DDBENCH_DOWNLOAD", "1")
    raw = dataset("cub2011").load()
    assert calls == [tmp_path / "home" / "data"]
    assert raw.x_train.shape[0] == 6
    assert cls(download=True).download


# -- the sample data (../shared/data) ---------------------------------------------------------

README_SIZES = {  # name: (classes, train, test)
    "flowers12_32": (12, 720, 240),
    "cub100_32": (100, 2999, 2903),
}
README_SHA = {
    "flowers12_32": "3352b8fd9fe7317910f85865f22ada3f9265a71ced5873db701128e04d9176e0",
    "cub100_32": "9f1ba9fca75e5fd3e4cafe4a26192b35278ab23a466540092f02f8e333e57894",
}
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"sample data not at {SHARED}")


@pytest.mark.realdata
@needs_shared
@pytest.mark.parametrize("name", sorted(README_SIZES))
def test_sample_data_sizes_and_readme_hash(name, monkeypatch):
    use_data(monkeypatch, SHARED)
    ds = dataset(name)
    raw = ds.load()
    k, n_train, n_test = README_SIZES[name]
    assert len(raw.class_names) == k
    assert raw.x_train.shape == (n_train, 32, 32, 3) and raw.x_test.shape == (n_test, 32, 32, 3)
    assert set(np.unique(raw.y_train).tolist()) == set(range(k))
    assert content_sha256(ds.read_arrays()) == README_SHA[name]


@pytest.mark.realdata
@needs_shared
def test_sample_data_is_found_without_configuration():
    reg = plugins.registry("dataset")
    for name in ("cifar10_32", "tinyimagenet200_32_subset", "cub100_32", "flowers12_32"):
        ds = reg.get(name)
        assert Path(ds.locate()).resolve() == (SHARED / f"{name}.npz").resolve()
        assert ds.found_via in (_common.VIA_CWD, _common.VIA_REPO)


def test_official_layout_through_prepare_and_cache(tmp_path, monkeypatch):
    from ddbench.data import prepare

    make_cub(tmp_path)
    use_data(monkeypatch, tmp_path)
    p = prepare("cub2011", 32, val_fraction=0.34)
    assert p.x_train.shape == (4, 3, 32, 32) and p.x_val.shape == (2, 3, 32, 32) and p.x_test.shape == (2, 3, 32, 32)
    assert p.info["source"]["format"] == "CUB_200_2011 folder"
    assert p.info["config"]["source"]["load_resolution"] == 64
    clear_memo()
    assert prepare("cub2011", 32, val_fraction=0.34).info["from_cache"]
