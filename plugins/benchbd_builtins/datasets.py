"""Built-in datasets, all 32×32 RGB, prepared once into ``DATA_ROOT/NAME.npz`` (see benchbd.data.images).

- ``synth-signs``: procedurally generated GTSRB look-alike, needs no network (the default).
- ``gtsrb``: German Traffic Sign Recognition Benchmark via torchvision, resized to 32×32. Offline, the shared
  ``decode_gtsrb32.py OUT.npz`` output placed at ``DATA_ROOT/gtsrb.npz`` is used as is.
- ``cifar10``: CIFAR-10 via torchvision.
- ``npz:PATH``: any file with x_train (N,32,32,3) uint8, y_train, x_test, y_test, and optionally ``family``
  ("gtsrb", "cifar10") to take that dataset's paper defaults.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from benchbd import DatasetSpec, ImageData, hookimpl
from benchbd.data.images import load_npz, load_or_prepare
from benchbd.data.synth_signs import NUM_CLASSES as SYNTH_CLASSES
from benchbd.data.synth_signs import VERSION as SYNTH_VERSION
from benchbd.data.synth_signs import generate_synth_signs
from benchbd.errors import BenchbdError


def _download_error(name: str, cache: Path, exc: Exception) -> BenchbdError:
    hint = (
        f"; offline, write a prepared copy there (e.g. `python shared/data/decode_gtsrb32.py {cache}`)"
        if name == "gtsrb"
        else ""
    )
    return BenchbdError(f"{name}: no prepared cache at {cache} and the download failed ({exc}){hint}")


def _torchvision_split(name: str, root: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    import torchvision

    if name == "cifar10":
        split = torchvision.datasets.CIFAR10(str(root), train=train, download=True)
        return np.asarray(split.data, dtype=np.uint8), np.asarray(split.targets, dtype=np.int64)
    split = torchvision.datasets.GTSRB(str(root), split="train" if train else "test", download=True)
    images = [np.asarray(image.convert("RGB").resize((32, 32), Image.BILINEAR)) for image, _ in split]
    return np.stack(images).astype(np.uint8), np.asarray([label for _, label in split._samples], dtype=np.int64)


def _torchvision_dataset(name: str, num_classes: int):
    def load(argument: str | None, data_root: Path) -> ImageData:
        cache = data_root / f"{name}.npz"

        def prepare() -> dict[str, np.ndarray]:
            try:
                x_train, y_train = _torchvision_split(name, data_root / "downloads", train=True)
                x_test, y_test = _torchvision_split(name, data_root / "downloads", train=False)
            except (OSError, RuntimeError) as exc:
                raise _download_error(name, cache, exc) from None
            return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}

        return ImageData.from_arrays(name, load_or_prepare(cache, prepare), family=name, num_classes=num_classes)

    return load


def _load_synth_signs(argument: str | None, data_root: Path) -> ImageData:
    arrays = load_or_prepare(data_root / f"synth-signs-v{SYNTH_VERSION}.npz", generate_synth_signs)
    return ImageData.from_arrays("synth-signs", arrays, family="gtsrb", num_classes=SYNTH_CLASSES)


def _load_npz(argument: str | None, data_root: Path) -> ImageData:
    """The file's optional ``family`` array (e.g. ``np.savez(..., family="gtsrb")``) picks the papers' attack
    defaults for that dataset; without it the family is "npz" and the attacks' general defaults apply."""
    path = Path(argument or "")
    arrays = load_npz(path)
    family = arrays.pop("family", np.array("npz"))
    if family.ndim != 0 or family.dtype.kind != "U":
        raise BenchbdError(f"{path}: 'family' must be a string (e.g. family=\"gtsrb\"); got {family.dtype} {family.shape}")
    return ImageData.from_arrays(f"npz:{path}", arrays, family=str(family))


@hookimpl
def benchbd_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec("synth-signs", "procedural GTSRB look-alike, 43 classes, no download (the default)", _load_synth_signs),
        DatasetSpec("gtsrb", "GTSRB, 43 classes, resized to 32x32 (torchvision download or the shared copy)", _torchvision_dataset("gtsrb", 43)),
        DatasetSpec("cifar10", "CIFAR-10, 10 classes (torchvision download)", _torchvision_dataset("cifar10", 10)),
        DatasetSpec("npz", "npz:PATH, a prepared file with x_train, y_train, x_test, y_test", _load_npz, takes_argument=True),
    ]
