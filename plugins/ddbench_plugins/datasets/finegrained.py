"""The fine-grained transfer targets of the KRR-ST paper, read from their official release
layouts: FGVC-Aircraft (variant level), Stanford Cars, CUB-200-2011, Stanford Dogs and
Oxford Flowers-102.

Their images have many sizes, so each image is resized **at load time** to a square of
``resolution`` pixels (64 by default) with Pillow's bicubic filter (antialiased when
shrinking), without cropping (the aspect ratio is not kept, and nothing is cut off; the
Aircraft copyright banner is kept, as torchvision does). The transfer tasks resize target
images to the source resolution (32 or 64) anyway, so loading at 64 keeps memory small
and loses nothing they use. Pass ``resolution=`` to the constructor for another size.

``.mat`` files (Cars, Dogs, Flowers-102) are read with scipy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from ddbench.errors import DataError

from ._common import LayoutDataset, corrupt_message, load_rgb, parallel_map, stack_images

#: errors that mean an unreadable file (PIL raises OSError/SyntaxError/ValueError)
_READ_ERRORS = (OSError, ValueError, SyntaxError, EOFError, KeyError, IndexError)


def _need_scipy(name: str):
    try:
        import scipy.io
    except ImportError as e:
        raise DataError(f"dataset {name!r} stores its labels in .mat files, which need scipy: "
                        "pip install 'ddbench[datasets]' (or pip install scipy)") from e
    return scipy.io


class _FineGrained(LayoutDataset):
    resolution = 64

    def __init__(self, download: bool = False, resolution: int | None = None) -> None:
        super().__init__(download)
        if resolution is not None:
            self.resolution = int(resolution)  # type: ignore[misc]

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "load_resolution": self.resolution}

    def _images(self, files: list[Any], where: str):
        r = self.resolution
        return stack_images(parallel_map(lambda p: load_rgb(p, r), files), where)

    def _raw(self, layout: Path, x_train, y_train, x_test, y_test, names, **info):
        import numpy as np

        from ddbench.interfaces import RawSplits

        info = {"load_resolution": self.resolution,
                "load_resize": "PIL bicubic to a square, no crop", **info}
        return RawSplits(x_train, np.asarray(y_train, np.int64), x_test, np.asarray(y_test, np.int64),
                         [str(n) for n in names], info)

    def load(self):
        try:
            return super().load()
        except DataError:
            raise
        except _READ_ERRORS + (RuntimeError,) as e:
            hit = self.find()
            raise DataError(corrupt_message(hit[0] if hit else self.name, e)) from e


class _TorchvisionFineGrained(_FineGrained):
    """A torchvision dataset class; images come back from ``__getitem__`` through a transform."""

    tv_class: ClassVar[str] = ""
    #: our split -> torchvision ``split`` values, concatenated
    tv_splits: ClassVar[dict[str, tuple[str, ...]]] = {}
    tv_kwargs: ClassVar[dict[str, Any]] = {}

    def _tv(self, root: Path, split: str, download: bool = False, transform: Any = None):
        import torchvision

        cls = getattr(torchvision.datasets, self.tv_class)
        return cls(root=str(root), split=split, download=download, transform=transform, **self.tv_kwargs)

    def _download(self, root: Path) -> None:  # pragma: no cover - network
        for splits in self.tv_splits.values():
            for s in splits:
                self._tv(root, s, download=True)

    def _read(self, layout: Path):
        import numpy as np

        r = self.resolution

        def to_array(im):
            from PIL import Image

            im = im.convert("RGB")
            if im.size != (r, r):
                im = im.resize((r, r), Image.BICUBIC)
            return np.asarray(im, dtype=np.uint8)

        out: dict[str, Any] = {}
        names: list[str] = []
        for ours, theirs in self.tv_splits.items():
            xs, ys = [], []
            for s in theirs:
                ds = self._tv(layout.parent, s, transform=to_array)
                names = self._class_names(ds)
                pairs = parallel_map(ds.__getitem__, range(len(ds)))
                xs += [p[0] for p in pairs]
                ys += [int(p[1]) for p in pairs]
            out[f"x_{ours}"] = stack_images(xs, f"{layout} ({ours})")
            out[f"y_{ours}"] = ys
        return self._raw(layout, out["x_train"], out["y_train"], out["x_test"], out["y_test"], names,
                         format=f"torchvision {self.tv_class}")

    def _class_names(self, ds) -> list[str]:
        return [str(c) for c in ds.classes]


class Aircraft(_TorchvisionFineGrained):
    name = "aircraft"
    description = "FGVC-Aircraft 2013b, variant level (6,667 trainval / 3,333 test, 100 classes), loaded at 64 px"
    tv_class = "FGVCAircraft"
    tv_splits = {"train": ("trainval",), "test": ("test",)}
    tv_kwargs = {"annotation_level": "variant"}
    candidates = ("fgvc-aircraft-2013b", "aircraft/fgvc-aircraft-2013b")
    markers = ("data/variants.txt", "data/images_variant_trainval.txt", "data/images_variant_test.txt",
               "data/images")
    layout_hint = "'fgvc-aircraft-2013b' folder (from fgvc-aircraft-2013b.tar.gz)"
    can_download = True


class Cars(_TorchvisionFineGrained):
    name = "cars"
    description = "Stanford Cars (8,144 train / 8,041 test, 196 classes), loaded at 64 px"
    tv_class = "StanfordCars"
    tv_splits = {"train": ("train",), "test": ("test",)}
    candidates = ("stanford_cars", "cars/stanford_cars")
    markers = ("devkit/cars_meta.mat", "devkit/cars_train_annos.mat", "cars_train", "cars_test",
               "cars_test_annos_withlabels.mat")
    layout_hint = ("'stanford_cars' folder (devkit/, cars_train/, cars_test/, cars_test_annos_withlabels.mat, "
                   "as torchvision's StanfordCars expects)")
    manual_hint = ("the original download URL is gone, so it cannot be downloaded automatically: get a copy of "
                   "the original release (e.g. a mirror of cars_train.tgz, cars_test.tgz, car_devkit.tgz and "
                   "cars_test_annos_withlabels.mat)")

    def _read(self, layout: Path):
        _need_scipy(self.name)
        return super()._read(layout)


class Flowers102(_TorchvisionFineGrained):
    name = "flowers102"
    description = "Oxford Flowers-102 (train+val 2,040 as train / 6,149 test, 102 classes), loaded at 64 px"
    tv_class = "Flowers102"
    tv_splits = {"train": ("train", "val"), "test": ("test",)}
    candidates = ("flowers-102", "flowers102/flowers-102")
    markers = ("jpg", "imagelabels.mat", "setid.mat")
    layout_hint = "'flowers-102' folder (jpg/, imagelabels.mat, setid.mat)"
    can_download = True

    def _read(self, layout: Path):
        _need_scipy(self.name)
        return super()._read(layout)

    def _class_names(self, ds) -> list[str]:
        names = getattr(ds, "classes", None)
        return [str(c) for c in names] if names else [str(i) for i in range(102)]


class CUB2011(_FineGrained):
    """CUB-200-2011. In the official ``train_test_split.txt`` flag 1 means train."""

    name = "cub2011"
    description = "CUB-200-2011 birds (5,994 train / 5,794 test, 200 classes), loaded at 64 px"
    candidates = ("CUB_200_2011", "cub2011/CUB_200_2011")
    markers = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt", "images")
    layout_hint = "'CUB_200_2011' folder (from CUB_200_2011.tgz)"
    can_download = True
    url: ClassVar[str] = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz"

    def _download(self, root: Path) -> None:  # pragma: no cover - network
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(self.url, str(root), filename="CUB_200_2011.tgz")

    @staticmethod
    def _table(path: Path) -> dict[int, str]:
        out = {}
        for line in path.read_text().splitlines():
            key, _, value = line.strip().partition(" ")
            if key:
                out[int(key)] = value.strip()
        return out

    def _read(self, layout: Path):
        images = self._table(layout / "images.txt")
        labels = self._table(layout / "image_class_labels.txt")
        split = self._table(layout / "train_test_split.txt")
        classes = self._table(layout / "classes.txt")
        class_ids = sorted(classes)
        index = {c: i for i, c in enumerate(class_ids)}
        names = [classes[c].split(".", 1)[-1] if classes[c].split(".", 1)[0].isdigit() else classes[c]
                 for c in class_ids]
        parts: dict[str, tuple[list[Path], list[int]]] = {"train": ([], []), "test": ([], [])}
        for img_id in sorted(images):
            if img_id not in labels or img_id not in split:
                raise DataError(f"{layout}: image {img_id} lacks a label or a split flag; "
                                f"the folder looks inconsistent: re-download or delete it")
            which = "train" if split[img_id] == "1" else "test"
            parts[which][0].append(layout / "images" / images[img_id])
            parts[which][1].append(index[int(labels[img_id])])
        x = {s: self._images(parts[s][0], f"{layout} ({s})") for s in parts}
        return self._raw(layout, x["train"], parts["train"][1], x["test"], parts["test"][1], names,
                         format="CUB_200_2011 folder", split_flag="1 = train (official release)")


class StanfordDogs(_FineGrained):
    name = "dogs"
    description = "Stanford Dogs (12,000 train / 8,580 test, 120 classes), loaded at 64 px"
    candidates = ("StanfordDogs", "stanford_dogs", "dogs")
    markers = ("Images",)
    layout_hint = "Stanford Dogs folder 'StanfordDogs' (Images/ from images.tar, and lists/ or the .mat files from lists.tar)"
    can_download = True
    urls: ClassVar[tuple[str, ...]] = ("http://vision.stanford.edu/aditya86/ImageNetDogs/images.tar",
                                       "http://vision.stanford.edu/aditya86/ImageNetDogs/lists.tar")

    @staticmethod
    def _list(d: Path, split: str) -> Path | None:
        for p in (d / "lists" / f"{split}_list.mat", d / f"{split}_list.mat"):
            if p.is_file():
                return p
        return None

    def _is_layout(self, d: Path) -> bool:
        return (d / "Images").is_dir() and self._list(d, "train") is not None and self._list(d, "test") is not None

    def identity(self) -> dict[str, Any]:
        ident = super().identity()
        hit = self.find()
        if hit:
            ident["lists"] = {s: [p.stat().st_size, p.stat().st_mtime_ns]
                              for s in ("train", "test") if (p := self._list(hit[0], s))}
        return ident

    def _download(self, root: Path) -> None:  # pragma: no cover - network
        from torchvision.datasets.utils import download_and_extract_archive

        for url in self.urls:
            download_and_extract_archive(url, str(root / self.candidates[0]))

    def _read(self, layout: Path):
        sio = _need_scipy(self.name)
        dirs = sorted(p.name for p in (layout / "Images").iterdir() if p.is_dir())
        names = [d.split("-", 1)[1] if "-" in d else d for d in dirs]
        parts = {}
        for split in ("train", "test"):
            path = self._list(layout, split)
            m = sio.loadmat(str(path), squeeze_me=True)
            files = [str(f) for f in _flat(m["file_list"])]
            labels = [int(v) - 1 for v in _flat(m["labels"])]
            if len(files) != len(labels):
                raise DataError(f"{path}: {len(files)} files but {len(labels)} labels")
            for f, y in zip(files, labels):
                if not 0 <= y < len(dirs) or f.split("/", 1)[0] != dirs[y]:
                    raise DataError(f"{path}: {f} has label {y + 1}, which does not match the sorted "
                                    f"folders of {layout / 'Images'}; the data looks inconsistent")
            parts[split] = (self._images([layout / "Images" / f for f in files], f"{layout} ({split})"), labels)
        return self._raw(layout, parts["train"][0], parts["train"][1], parts["test"][0], parts["test"][1],
                         names, format="Stanford Dogs folder")


def _flat(a: Any) -> list[Any]:
    import numpy as np

    a = np.asarray(a, dtype=object).reshape(-1)
    out = []
    for v in a:
        while isinstance(v, np.ndarray):  # cells may hold 1-element arrays
            v = v.reshape(-1)[0]
        out.append(v)
    return out
