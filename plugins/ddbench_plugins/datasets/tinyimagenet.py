"""Tiny ImageNet-200 from the official ``tiny-imagenet-200`` folder (cs231n release):
``wnids.txt``, ``words.txt``, ``train/<wnid>/images/*.JPEG`` (500 per class) and
``val/images/*.JPEG`` labelled by ``val/val_annotations.txt`` (50 per class).

The official test split has no labels, so ddbench's test split is the official
validation split. Label ``i`` is the ``i``-th WordNet id in sorted order; its class
name is the first synonym in ``words.txt``. Images keep their size (64 px in the
official release); any image of another size is resized to the first training image's
size with Pillow's bicubic filter.
"""

from __future__ import annotations

from pathlib import Path

from ddbench.errors import DataError

from ._common import LayoutDataset, corrupt_message, load_rgb, parallel_map, stack_images

URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"


def read_words(path: Path) -> dict[str, str]:
    out = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            wnid, _, words = line.partition("\t")
            if wnid.strip():
                out[wnid.strip()] = words.split(",")[0].strip() or wnid.strip()
    return out


class TinyImageNet(LayoutDataset):
    name = "tinyimagenet"
    description = "Tiny ImageNet-200, official release (100,000 train / 10,000 val as test, 200 classes, 64 px)"
    resolution = 64
    candidates = ("tiny-imagenet-200", "tinyimagenet/tiny-imagenet-200")
    markers = ("wnids.txt", "train", "val/val_annotations.txt")
    layout_hint = "'tiny-imagenet-200' folder (from tiny-imagenet-200.zip)"
    can_download = True

    def _download(self, root: Path) -> None:  # pragma: no cover - network
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(URL, str(root))

    def _read(self, layout: Path):
        import numpy as np

        from ddbench.interfaces import RawSplits

        try:
            wnids = sorted({w.strip() for w in (layout / "wnids.txt").read_text().split() if w.strip()})
            words = read_words(layout / "words.txt")
            index = {w: i for i, w in enumerate(wnids)}
            train: list[tuple[Path, int]] = []
            for w in wnids:
                folder = layout / "train" / w / "images"
                files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
                if not files:
                    raise DataError(f"{folder}: no images; the tiny-imagenet-200 folder looks incomplete: "
                                    f"re-download or delete it")
                train += [(p, index[w]) for p in files]
            test: list[tuple[Path, int]] = []
            for line in (layout / "val" / "val_annotations.txt").read_text().splitlines():
                parts = line.split("\t")
                if len(parts) < 2 or not parts[0].strip():
                    continue
                if parts[1] not in index:
                    raise DataError(f"{layout / 'val' / 'val_annotations.txt'}: wnid {parts[1]!r} is not in "
                                    f"wnids.txt; the folder looks inconsistent: re-download or delete it")
                test.append((layout / "val" / "images" / parts[0].strip(), index[parts[1]]))
            first = load_rgb(train[0][0], None)
            size = first.shape[0] if first.shape[0] == first.shape[1] else self.resolution
            x_train = stack_images(parallel_map(lambda t: load_rgb(t[0], size), train), str(layout / "train"))
            x_test = stack_images(parallel_map(lambda t: load_rgb(t[0], size), test), str(layout / "val"))
        except DataError:
            raise
        except (OSError, ValueError, SyntaxError) as e:  # PIL raises these for unreadable images
            raise DataError(corrupt_message(layout, e)) from e
        return RawSplits(x_train, np.array([t[1] for t in train], np.int64),
                         x_test, np.array([t[1] for t in test], np.int64),
                         [words.get(w, w) for w in wnids], {"format": "tiny-imagenet-200 folder", "wnids": wnids})
