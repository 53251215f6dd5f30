"""Zest (RTTD's first model distance): quick shift superpixels, LIME's perturbations and least-squares signatures,
and the class-matched cosine distance, each on constructed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchbd.errors import BenchbdError
from benchbd_builtins.defenses.zest import LimeProbe, lime_signature, quickshift, rgb_to_lab, zest_distance


def quickshift_pixel_by_pixel(image: np.ndarray, kernel_size: float, ratio: float, max_dist: float) -> np.ndarray:
    """Quick shift written as its definition reads, one pixel at a time (the vectorised one must agree)."""
    features = ratio * rgb_to_lab(image.astype(np.float64))
    height, width, _ = features.shape
    reach = math.ceil(3 * kernel_size)

    def window(r: int, c: int) -> list[tuple[int, int]]:
        return [(r2, c2) for r2 in range(max(r - reach, 0), min(r + reach + 1, height))
                for c2 in range(max(c - reach, 0), min(c + reach + 1, width))]

    def squared(r: int, c: int, r2: int, c2: int) -> float:
        return float(((features[r, c] - features[r2, c2]) ** 2).sum() + (r - r2) ** 2 + (c - c2) ** 2)

    noise = np.random.default_rng(42).normal(scale=1e-5, size=(height, width))  # first, as skimage sums
    kernel = [[[math.exp(-0.5 * squared(r, c, *q) / kernel_size**2) for q in window(r, c)] for c in range(width)]
              for r in range(height)]
    density = np.array([[sum(kernel[r][c], start=noise[r, c]) for c in range(width)] for r in range(height)])
    parent = {}
    for r in range(height):
        for c in range(width):
            higher = [q for q in window(r, c) if density[q] > density[r, c]]
            nearest = min(higher, key=lambda q: squared(r, c, *q), default=None)  # the first of equals, as skimage
            far = nearest is None or math.sqrt(squared(r, c, *nearest)) > max_dist
            parent[r, c] = (r, c) if far else nearest
    roots = {}
    for pixel in parent:
        root = pixel
        while parent[root] != root:
            root = parent[root]
        roots[pixel] = root
    order = sorted(set(roots.values()), key=lambda q: q[0] * width + q[1])
    return np.array([[order.index(roots[r, c]) for c in range(width)] for r in range(height)])


def test_lab_of_known_colours() -> None:
    colours = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    lab = rgb_to_lab(colours)
    assert lab[0] == pytest.approx([100.0, 0.0, 0.0], abs=0.01)
    assert lab[1] == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)
    assert lab[2] == pytest.approx([53.24, 80.09, 67.20], abs=0.02)  # sRGB red under D65
    assert lab[3] == pytest.approx([32.30, 79.19, -107.86], abs=0.02)  # sRGB blue


@pytest.mark.parametrize(("kernel_size", "max_dist"), [(4.0, 200.0), (1.0, 200.0), (1.0, 3.0)])
def test_quickshift_agrees_with_its_pixel_by_pixel_definition(kernel_size: float, max_dist: float) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(3, 6, 7, 3)).astype(np.float64)
    images[1, :, :4] = [250.0, 10.0, 10.0]  # flat regions, where densities tie but for the tie-breaking noise
    labels = quickshift(images, kernel_size=kernel_size, ratio=0.2, max_dist=max_dist)
    expected = [quickshift_pixel_by_pixel(image, kernel_size, 0.2, max_dist) for image in images]
    assert [np.array_equal(got, want) for got, want in zip(labels, expected)] == [True] * 3
    assert len(np.unique(labels[2])) > 1  # not a vacuous agreement on one superpixel


#: skimage 0.26.0's ``quickshift(image, kernel_size=K, ratio=0.2, max_dist=200)`` of :func:`skimage_inputs`.
SKIMAGE_LABELS = {
    4.0: [
        [[2, 2, 2, 2, 2, 3, 36, 0, 1], [2, 2, 2, 2, 2, 3, 4, 5, 6], [2, 2, 2, 2, 2, 7, 8, 9, 10], [2, 2, 2, 2, 2, 11, 12, 13, 14],
         [15, 22, 16, 17, 18, 19, 20, 21, 22], [23, 24, 25, 38, 26, 27, 28, 29, 30], [7, 5, 31, 32, 23, 33, 1, 34, 35],
         [36, 37, 38, 39, 40, 41, 42, 41, 43]],
        [[10, 27, 7, 0, 6, 7, 29, 1, 17], [27, 2, 23, 27, 23, 15, 9, 21, 3], [4, 5, 6, 15, 7, 8, 29, 21, 9],
         [27, 10, 23, 11, 8, 7, 12, 29, 13], [26, 14, 2, 23, 15, 16, 8, 29, 17], [18, 19, 20, 15, 7, 29, 21, 29, 1],
         [18, 22, 27, 23, 11, 24, 1, 1, 9], [25, 26, 27, 24, 28, 29, 15, 12, 30]],
    ],
    1.0: [
        [[3, 3, 3, 3, 3, 4, 0, 1, 2], [3, 3, 3, 3, 3, 4, 5, 6, 7], [3, 3, 3, 3, 3, 8, 9, 10, 11], [3, 3, 3, 3, 3, 12, 13, 14, 15],
         [16, 17, 18, 19, 20, 21, 22, 23, 24], [25, 26, 27, 44, 28, 29, 30, 31, 32], [33, 34, 35, 36, 37, 38, 39, 40, 41],
         [42, 43, 44, 45, 46, 47, 48, 47, 49]],
        [[19, 0, 15, 1, 14, 16, 2, 3, 4], [18, 5, 6, 7, 8, 9, 17, 10, 11], [12, 13, 14, 9, 15, 16, 22, 10, 17],
         [18, 19, 8, 20, 16, 15, 21, 22, 23], [37, 24, 5, 8, 25, 26, 16, 22, 27], [28, 29, 30, 25, 15, 22, 31, 22, 16],
         [28, 32, 18, 33, 20, 34, 16, 16, 35], [36, 37, 38, 34, 39, 40, 15, 35, 41]],
    ],
}


def skimage_inputs() -> np.ndarray:
    """Two 8×9 images as 0-255 floats (Zest's input to quickshift): noise with a flat block; a noisy gradient."""
    images = np.random.default_rng(7).integers(0, 256, size=(2, 8, 9, 3)).astype(np.float64)
    images[0, :4, :5] = [30, 200, 60]
    images[1] = np.clip(images[1] * 0.3 + np.linspace(0, 170, 9)[None, :, None], 0, 255).round()
    return images


@pytest.mark.parametrize("kernel_size", [4.0, 1.0])
def test_quickshift_reproduces_skimages_label_maps(kernel_size: float) -> None:
    """An independent check of fidelity: label maps skimage computed (benchmarks/zest_quickshift_vs_skimage.py
    compares the two on real images)."""
    labels = quickshift(skimage_inputs(), kernel_size=kernel_size, ratio=0.2, max_dist=200.0)
    assert labels.tolist() == SKIMAGE_LABELS[kernel_size]


def test_quickshift_cuts_two_flat_colours_apart() -> None:
    image = np.zeros((1, 16, 16, 3))
    image[0, :, :8] = [255.0, 0.0, 0.0]
    image[0, :, 8:] = [0.0, 0.0, 255.0]
    labels = quickshift(image)[0]
    assert len(np.unique(labels[:, :8])) == 1 and len(np.unique(labels[:, 8:])) == 1
    assert labels[0, 0] != labels[0, 15]


def test_the_probe_keeps_the_whole_image_first_and_fills_hidden_superpixels_with_the_mean_colour() -> None:
    rng = np.random.default_rng(1)
    images = np.zeros((2, 16, 16, 3), dtype=np.uint8)
    images[:, :, :8] = [200, 40, 40]
    images[:, :, 8:] = [40, 40, 200]
    probe = LimeProbe.draw(images, samples=64, rng=rng)
    assert [rows.shape for rows in probe.keep] == [(64, 2), (64, 2)]
    assert (probe.keep[0][0] == 1).all() and 0.3 < probe.keep[0][1:].mean() < 0.7
    perturbed = probe.perturbed(0)
    assert np.array_equal(perturbed[0], images[0])
    assert probe.fill.tolist() == [120, 40, 120]
    for rows, image in zip(probe.keep[0], perturbed):
        for segment, kept in enumerate(rows):
            region = image[probe.segments[0] == segment]
            assert (region == (images[0][probe.segments[0] == segment] if kept else probe.fill)).all()


def test_the_signature_of_a_model_linear_in_its_pixels_is_each_superpixels_contribution() -> None:
    """For logits linear in the image, f(x) = W·vec(x), a perturbation's logits are f(fill) plus, per kept
    superpixel, W·(its pixels − fill there): the least-squares fit on the keep-vectors must return those terms
    (the whole-image fill term spread over the superpixels, since the fit has no intercept, is zero here)."""
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(3, 10, 10, 3), dtype=np.uint8)
    probe = LimeProbe.draw(images, samples=300, rng=rng)
    probe = LimeProbe(probe.images, probe.segments, probe.keep, np.zeros(3, dtype=np.uint8))  # fill 0: f(fill) = 0
    weights = rng.normal(size=(4, 10 * 10 * 3))

    def logits(x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), -1).astype(np.float64) / 255 @ weights.T

    signature = lime_signature(probe, logits)
    widest = max(rows.shape[1] for rows in probe.keep)
    assert signature.shape == (3, widest, 4)
    for i, image in enumerate(images):
        count = probe.keep[i].shape[1]
        for segment in range(count):
            alone = np.where((probe.segments[i] == segment)[..., None], image, 0)[None]
            assert signature[i, segment] == pytest.approx(logits(alone)[0], abs=1e-8)
        assert (signature[i, count:] == 0).all()


def test_the_signature_does_not_depend_on_how_many_perturbations_go_through_the_model_at_once(monkeypatch) -> None:
    rng = np.random.default_rng(4)
    probe = LimeProbe.draw(rng.integers(0, 256, size=(5, 8, 8, 3), dtype=np.uint8), samples=120, rng=rng)
    weights = rng.normal(size=(3, 8 * 8 * 3))
    calls: list[int] = []

    def logits(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return np.tanh(x.reshape(len(x), -1).astype(np.float64) / 255 @ weights.T)

    whole = lime_signature(probe, logits)
    monkeypatch.setattr("benchbd_builtins.defenses.zest.PERTURBED_PER_PASS", 240)
    in_parts = lime_signature(probe, logits)
    assert calls == [600, 240, 240, 120]
    assert np.allclose(whole, in_parts, rtol=0, atol=1e-12)


def test_zest_distance_is_zero_up_to_the_order_of_classes_and_grows_with_the_difference() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=(20, 6, 5))
    assert zest_distance(a, a.copy()) == pytest.approx(0.0, abs=1e-12)
    assert zest_distance(a, 2.5 * a[..., [3, 0, 4, 1, 2]]) == pytest.approx(0.0, abs=1e-12)  # classes matched, scale-free
    near, far = a + 0.1 * rng.normal(size=a.shape), a + 1.0 * rng.normal(size=a.shape)
    assert 0 < zest_distance(a, near) < zest_distance(a, far)
    assert zest_distance(a, far) == pytest.approx(zest_distance(far, a), abs=1e-12)
    one_class = a[..., :1]
    assert zest_distance(one_class, -one_class) == pytest.approx(2.0, abs=1e-12)  # opposed: nothing to re-match
    with pytest.raises(ValueError, match="different shapes"):
        zest_distance(a, a[..., :4])
    # Zero rows (the padding of references with fewer superpixels) change nothing.
    padded_a, padded_far = np.pad(a, ((0, 0), (0, 3), (0, 0))), np.pad(far, ((0, 0), (0, 3), (0, 0)))
    assert zest_distance(padded_a, padded_far) == pytest.approx(zest_distance(a, far), abs=1e-12)


def test_too_few_perturbations_to_determine_a_signature_are_refused() -> None:
    """Fewer perturbations than superpixels leave the least-squares weights undetermined: an error, not one of the
    many fits."""
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, size=(2, 16, 16, 3), dtype=np.uint8)
    assert quickshift(images[:1].astype(np.float64)).max() + 1 > 3
    with pytest.raises(BenchbdError, match="reference image 0 has .* superpixels and its 3 perturbations determine only"):
        LimeProbe.draw(images, samples=3, rng=rng)
