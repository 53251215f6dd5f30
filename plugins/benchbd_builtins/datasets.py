"""Built-in datasets, all 32×32 RGB, prepared once into ``DATA_ROOT/NAME.npz`` (see benchbd.data.images).

- ``synth-signs``: procedurally generated GTSRB look-alike, needs no network (the default). ``synth-signs:classes=N``
  keeps the N classes that GTSRB has the most images of, as ``gtsrb:classes=N`` does, with as many images each as
  in the whole set (10 classes: 4,246 training and 1,234 test images). ``synth-signs:frames=F`` makes its training
  images tracks of F views of one sign, as GTSRB's are tracks of about 30 (default 1: every image its own sign).
- ``gtsrb``: German Traffic Sign Recognition Benchmark via torchvision, resized to 32×32. Offline, the shared
  ``decode_gtsrb32.py OUT.npz`` output placed at ``DATA_ROOT/gtsrb.npz`` is used as is. ``gtsrb:every=K`` keeps
  every K-th frame of each training track (frames 0, K, 2K, ...): GTSRB's 39,209 training images are 1,307
  physical signs filmed in tracks of about 30 frames, so the subset keeps every sign and drops near-duplicate
  views; the test set stays whole. ``gtsrb:classes=N`` keeps the N classes with the most training images (both
  splits, relabelled 0..N−1); ``gtsrb:every=K,classes=N`` does both.
- ``cifar10``: CIFAR-10 via torchvision.
- ``npz:PATH``: any file with x_train (N,32,32,3) uint8, y_train, x_test, y_test, and optionally ``family``
  ("gtsrb", "cifar10") to take that dataset's paper defaults.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from benchbd import DatasetSpec, ImageData, hookimpl
from benchbd.data.images import largest_indices, load_npz, load_or_prepare
from benchbd.data.synth_signs import NUM_CLASSES as SYNTH_CLASSES
from benchbd.data.synth_signs import FRAMES as SYNTH_FRAMES
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


def _torchvision_split(name: str, root: Path, train: bool) -> dict[str, np.ndarray]:
    """One split as arrays (``x``, ``y``; GTSRB's training split also ``track`` and ``frame``, read from its file
    names TTTTT_FFFFF.ppm)."""
    import torchvision

    if name == "cifar10":
        split = torchvision.datasets.CIFAR10(str(root), train=train, download=True)
        return {"x": np.asarray(split.data, dtype=np.uint8), "y": np.asarray(split.targets, dtype=np.int64)}
    split = torchvision.datasets.GTSRB(str(root), split="train" if train else "test", download=True)
    images = [np.asarray(image.convert("RGB").resize((32, 32), Image.BILINEAR)) for image, _ in split]
    arrays = {"x": np.stack(images).astype(np.uint8), "y": np.asarray([label for _, label in split._samples], dtype=np.int64)}
    if train:
        names = [Path(path).stem.split("_") for path, _ in split._samples]
        arrays["track"] = np.asarray([int(track) for track, _ in names], dtype=np.int16)
        arrays["frame"] = np.asarray([int(frame) for _, frame in names], dtype=np.int16)
    return arrays


GTSRB_ARGUMENTS = "every=K (every K-th frame of each track, K ≥ 1), classes=N (the N largest classes), or both: every=K,classes=N"
SYNTH_ARGUMENTS = (
    f"classes=N (the N classes GTSRB has most images of, 2 ≤ N ≤ {SYNTH_CLASSES}), frames=F (views of one sign in a "
    f"training track, F ≥ 1; default {SYNTH_FRAMES}), or both: classes=N,frames=F"
)


def parse_arguments(name: str, argument: str, keys: tuple[str, ...], help_text: str) -> dict[str, int]:
    """``KEY=N`` pairs (``every=5,classes=10``), comma-separated, each key at most once, as {"every": 5, ...}."""
    parsed: dict[str, int] = {}
    for part in argument.split(","):
        key, _, value = part.strip().partition("=")
        if key not in keys or key in parsed or not value.isdigit() or int(value) < 1:
            raise BenchbdError(f"{name}: unknown argument '{argument}'; it takes {help_text}")
        parsed[key] = int(value)
    return parsed


def training_subset(arrays: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    """The arrays with only the training examples in the mask ``keep``: images, labels, and tracks and frames
    where the cache has them; the test split untouched."""
    kept = {key: arrays[key][keep] for key in ("x_train", "y_train", "train_track", "train_frame") if key in arrays}
    return {**arrays, **kept}


def every_kth_frame(arrays: dict[str, np.ndarray], every: int, cache: Path) -> dict[str, np.ndarray]:
    """The training images of frames 0, K, 2K, ... of every track; the test set whole."""
    if "train_frame" not in arrays:
        raise BenchbdError(
            f"gtsrb:every=K needs each training image's frame, and {cache} has none; re-create it with "
            f"`python shared/data/decode_gtsrb32.py {cache}`"
        )
    return training_subset(arrays, arrays["train_frame"] % every == 0)


def largest_classes(arrays: dict[str, np.ndarray], count: int) -> dict[str, np.ndarray]:
    """The ``count`` classes with the most training images (ties: the lower index), both splits, relabelled
    0..count−1 in the order of their original indices (the population of AEGIS-style model detection, where
    every class is examined)."""
    sizes = np.bincount(arrays["y_train"])
    if count > len(sizes):
        raise BenchbdError(f"gtsrb: classes={count} asks for more classes than the {len(sizes)} it has")
    kept = largest_indices(sizes, count)
    relabel = np.full(len(sizes), -1, dtype=np.int64)
    relabel[kept] = np.arange(count)
    out = training_subset(arrays, np.isin(arrays["y_train"], kept))
    test = np.isin(arrays["y_test"], kept)
    out.update(y_train=relabel[out["y_train"]], x_test=arrays["x_test"][test], y_test=relabel[arrays["y_test"][test]])
    return out


def _torchvision_dataset(name: str, num_classes: int):
    def load(argument: str | None, data_root: Path) -> ImageData:
        cache = data_root / f"{name}.npz"

        def prepare() -> dict[str, np.ndarray]:
            try:
                train = _torchvision_split(name, data_root / "downloads", train=True)
                test = _torchvision_split(name, data_root / "downloads", train=False)
            except (OSError, RuntimeError) as exc:
                raise _download_error(name, cache, exc) from None
            arrays = {"x_train": train["x"], "y_train": train["y"], "x_test": test["x"], "y_test": test["y"]}
            if "frame" in train:
                arrays.update(train_track=train["track"], train_frame=train["frame"])
            return arrays

        arrays = load_or_prepare(cache, prepare)
        if argument is None:
            return ImageData.from_arrays(name, arrays, family=name, num_classes=num_classes)
        options = parse_arguments(name, argument, ("every", "classes"), GTSRB_ARGUMENTS)
        if "every" in options:
            arrays = every_kth_frame(arrays, options["every"], cache)
        if "classes" in options:
            arrays = largest_classes(arrays, options["classes"])
        return ImageData.from_arrays(
            f"{name}:{argument}", arrays, family=name, num_classes=options.get("classes", num_classes)
        )

    return load


def _load_synth_signs(argument: str | None, data_root: Path) -> ImageData:
    options = {} if argument is None else parse_arguments("synth-signs", argument, ("classes", "frames"), SYNTH_ARGUMENTS)
    classes, frames = options.get("classes"), options.get("frames", SYNTH_FRAMES)
    if classes is not None and not 2 <= classes <= SYNTH_CLASSES:
        raise BenchbdError(f"synth-signs: {argument}; it takes {SYNTH_ARGUMENTS}")
    cache = "-".join([f"synth-signs-v{SYNTH_VERSION}", *(f"{key}{value}" for key, value in sorted(options.items()))])
    arrays = load_or_prepare(data_root / f"{cache}.npz", lambda: generate_synth_signs(classes=classes, frames=frames))
    name = "synth-signs" if argument is None else f"synth-signs:{argument}"
    return ImageData.from_arrays(name, arrays, family="gtsrb", num_classes=classes or SYNTH_CLASSES)


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
        DatasetSpec(
            "synth-signs",
            "procedural GTSRB look-alike, 43 classes, no download (the default); synth-signs:classes=N keeps the N classes GTSRB has most images of (the CPU demo's synth-signs:classes=10)",
            _load_synth_signs,
            argument="optional",
            argument_help="classes=N",
        ),
        DatasetSpec(
            "gtsrb",
            "GTSRB, 43 classes, resized to 32x32 (torchvision download or the shared copy); gtsrb:every=K keeps every K-th frame of each track, gtsrb:classes=N the N largest classes",
            _torchvision_dataset("gtsrb", 43),
            argument="optional",
            argument_help="every=K,classes=N",
        ),
        DatasetSpec("cifar10", "CIFAR-10, 10 classes (torchvision download)", _torchvision_dataset("cifar10", 10)),
        DatasetSpec("npz", "npz:PATH, a prepared file with x_train, y_train, x_test, y_test", _load_npz, argument="required", argument_help="PATH"),
    ]
