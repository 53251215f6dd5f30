"""The in-memory dataset every plugin sees, and the prepared-cache file format (.npz)."""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import numpy as np

from benchbd.errors import BenchbdError

ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test")
#: Arrays a prepared file may also hold: the paper setting (``family``), and where each training image was filmed
#: (``train_track``, ``train_frame``: GTSRB's tracks of about 30 frames of one physical sign).
OPTIONAL_KEYS = ("family", "train_track", "train_frame")


@dataclass(frozen=True)
class ImageData:
    """A classification dataset as plain arrays.

    Images are uint8 of shape (N, H, W, 3); labels are int64 class ids in [0, num_classes).
    ``family`` names the paper setting whose attack defaults apply ("gtsrb" or "cifar10").
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    family: str

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @classmethod
    def from_arrays(cls, name: str, arrays: dict[str, np.ndarray], family: str, num_classes: int | None = None) -> ImageData:
        """Validate the four arrays (shapes, dtypes, label range) and wrap them."""
        missing = [k for k in ARRAY_KEYS if k not in arrays]
        if missing:
            raise BenchbdError(f"dataset {name}: missing array(s) {', '.join(missing)}; expected {', '.join(ARRAY_KEYS)}")
        x_train, y_train, x_test, y_test = (np.asarray(arrays[k]) for k in ARRAY_KEYS)
        for key, x in (("x_train", x_train), ("x_test", x_test)):
            if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3 or x.shape[1] < 8 or x.shape[2] < 8:
                raise BenchbdError(
                    f"dataset {name}: {key} must be uint8 of shape (N, H, W, 3); got {x.dtype} {x.shape}"
                )
        if x_train.shape[1:] != x_test.shape[1:]:
            raise BenchbdError(f"dataset {name}: train and test images differ in shape: {x_train.shape[1:]} vs {x_test.shape[1:]}")
        for key, y, x in (("y_train", y_train, x_train), ("y_test", y_test, x_test)):
            if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
                raise BenchbdError(f"dataset {name}: {key} must be a 1-D integer array; got {y.dtype} {y.shape}")
            if len(y) != len(x):
                raise BenchbdError(f"dataset {name}: {key} has {len(y)} labels for {len(x)} images")
            if len(y) == 0:
                raise BenchbdError(f"dataset {name}: {key} is empty")
        classes = int(num_classes) if num_classes is not None else int(max(y_train.max(), y_test.max())) + 1
        if num_classes is None and y_train.min() >= 0:
            absent = np.setdiff1d(np.arange(classes), y_train)
            if len(absent):
                raise BenchbdError(
                    f"dataset {name}: labels must be the class ids 0..C-1, but {len(absent)} of 0..{classes - 1} have no "
                    f"training example (e.g. {', '.join(map(str, absent[:5]))}): a label out of range?"
                )
        for key, y in (("y_train", y_train), ("y_test", y_test)):
            if y.min() < 0 or y.max() >= classes:
                raise BenchbdError(
                    f"dataset {name}: {key} has labels outside [0, {classes}): min {y.min()}, max {y.max()}"
                )
        return cls(name, x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64), classes, family)


def largest_indices(sizes: np.ndarray, count: int) -> np.ndarray:
    """The indices of the ``count`` largest ``sizes`` (ties: the lower index), in index order: the classes that
    ``gtsrb:classes=N`` and ``synth-signs:classes=N`` keep."""
    return np.sort(np.argsort(-np.asarray(sizes), kind="stable")[:count])


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Read the four arrays of a prepared .npz and those of :data:`OPTIONAL_KEYS` it holds (``family``, a string
    naming the paper setting whose attack defaults apply), with an error that says what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise BenchbdError(f"dataset file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in ARRAY_KEYS if k not in archive.files]
            if missing:
                raise BenchbdError(
                    f"{path}: not a prepared dataset, missing array(s) {', '.join(missing)} "
                    f"(expected {', '.join(ARRAY_KEYS)}; for the shared GTSRB file run decode_gtsrb32.py first)"
                )
            return {k: archive[k] for k in (*ARRAY_KEYS, *OPTIONAL_KEYS) if k in archive.files}
    except BenchbdError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise BenchbdError(f"{path}: unreadable or corrupt dataset file ({exc})") from None


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a prepared .npz (the four arrays and any of :data:`OPTIONAL_KEYS`) atomically: a crash never leaves a
    half-written cache behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, **{k: arrays[k] for k in (*ARRAY_KEYS, *OPTIONAL_KEYS) if k in arrays})
    os.replace(tmp, path)


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset a plugin provides.

    ``load(argument, data_root)`` returns the :class:`ImageData`; ``argument`` is the text after the colon in
    ``NAME:ARGUMENT`` (``npz:PATH``, ``gtsrb:every=5``), ``None`` when absent. ``argument`` says whether the
    dataset takes none, an optional one or a required one; ``argument_help`` says what it is (for error messages).
    """

    name: str
    description: str
    load: Callable[[str | None, Path], ImageData]
    argument: Literal["none", "optional", "required"] = "none"
    argument_help: str = ""


def default_data_root() -> Path:
    """Where datasets and prepared caches live: ``$BENCHBD_DATA`` or ``~/.cache/benchbd``."""
    return Path(os.environ.get("BENCHBD_DATA") or Path.home() / ".cache" / "benchbd")


def load_or_prepare(cache: Path, prepare: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Load the prepared cache ``cache``; on first use build it with ``prepare`` and write it atomically."""
    if cache.is_file():
        return load_npz(cache)
    arrays = prepare()
    save_npz(cache, arrays)
    return arrays
