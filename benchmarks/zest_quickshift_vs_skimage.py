"""benchbd's quick shift (``plugins/benchbd_builtins/defenses/zest.py``) against scikit-image's, on real images.

Zest's superpixels come from skimage's ``quickshift`` (through LIME); benchbd reimplements it in numpy rather than
depend on scikit-image. This prints, for N images of the test split, how many label maps are identical, the
superpixel counts, and both implementations' time, for the images as Zest's code hands them over (0-255 floats)
and in [0, 1]:

    pip install scikit-image   # not a benchbd dependency
    python benchmarks/zest_quickshift_vs_skimage.py --dataset gtsrb --images 200
"""

from __future__ import annotations

import argparse
import sys
import time

from pathlib import Path

import numpy as np

from benchbd.data.images import default_data_root
from benchbd.harness.config import load_dataset
from benchbd.registry import default_registry
from benchbd_builtins.defenses.zest import LIME_KERNEL_SIZE, LIME_MAX_DIST, LIME_RATIO, quickshift


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="gtsrb", help="a dataset spec, as benchbd matrix takes it (default gtsrb)")
    parser.add_argument("--images", type=int, default=200, help="test images compared (default 200)")
    parser.add_argument("--data-root", type=Path,
                        help="where the prepared datasets lie (default: $BENCHBD_DATA or ~/.cache/benchbd)")
    args = parser.parse_args()
    try:
        from skimage.segmentation import quickshift as skimage_quickshift
    except ImportError:
        print("this comparison needs scikit-image: pip install scikit-image", file=sys.stderr)
        return 2
    data = load_dataset(default_registry(), args.dataset, args.data_root or default_data_root())
    count = min(args.images, len(data.x_test))
    picked = data.x_test[np.random.default_rng(0).choice(len(data.x_test), size=count, replace=False)]
    for scale_name, scale in [("0-255 floats (Zest's code)", 1.0), ("[0, 1]", 1 / 255)]:
        images = picked.astype(np.float64) * scale
        start = time.perf_counter()
        ours = quickshift(images)
        ours_seconds = time.perf_counter() - start
        start = time.perf_counter()
        theirs = [skimage_quickshift(image, kernel_size=LIME_KERNEL_SIZE, ratio=LIME_RATIO, max_dist=LIME_MAX_DIST)
                  for image in images]
        theirs_seconds = time.perf_counter() - start
        same = sum(np.array_equal(a, b) for a, b in zip(ours, theirs))
        counts = np.array([labels.max() + 1 for labels in theirs])
        print(f"{scale_name}: {same}/{len(images)} label maps identical; superpixels per image min {counts.min()}, "
              f"median {np.median(counts):g}, mean {counts.mean():.1f}, max {counts.max()}; "
              f"benchbd {ours_seconds:.2f} s, skimage {theirs_seconds:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
