"""Zest (Jia, Yaghini, Choquette-Choo, Dullerud, Thudi, Chandrasekaran & Papernot, "A Zest of LIME: Towards
Architecture-Independent Model Distances", ICLR 2022): the model distance RTTD names first (RTTD's abstract: "model
distances with metrics such as Zest, CKA, or output-space distance"; its figure 5 plots Zest distances).

Zest compares two models by local linear explanations (LIME, Ribeiro et al. 2016) on the same reference images:

1. Draw reference images (Zest: 128); segment each into superpixels (LIME's image explainer: quickshift).
2. For each reference image draw perturbations (Zest: 1,000): each superpixel kept or hidden with probability ½,
   the first perturbation the whole image. Every model compared sees the same perturbations (:class:`LimeProbe`).
3. Per model and reference image, fit a linear model from the binary keep-vector to the model's outputs (every
   class); the model's signature is these linear models' weights, concatenated over the references
   (:func:`lime_signature`).
4. The distance of two signatures is their cosine distance, after matching each class of one model to a class of
   the other (:func:`zest_distance`).

The Zest paper is not among benchbd's seed papers. The choices the steps above leave open follow its released code
as a public code index holds it (read, not copied; the index did not name the repository, so it is not cited by
name here; a model-fingerprinting benchmark's re-implementation, also unnamed there, makes the same choices):
128 reference images and 1,000 perturbations each; quickshift with
LIME's parameters (kernel size 4, ratio 0.2, max distance 200), run on the images' 0-255 values as floats, which
skimage does not rescale, so its L*a*b* conversion sees values up to 255 (docs/findings.md, "rttd": how many
superpixels that gives, against [0, 1] values); hidden superpixels set to 0 in the network's normalised input
space, i.e. the normalisation's mean colour; the model's raw outputs (logits), not probabilities; an unweighted
least-squares fit without intercept, ``pinv(MᵀM)Mᵀy`` (no LIME kernel weighting); greedy class matching by the
smallest cosine distance between two classes' columns; and the cosine distance of the whole flattened signatures.
*Ours*: benchbd's models take [0, 1] images without a normalisation, so the hidden superpixels take the mean
colour of the reference images themselves (rounded to uint8); the least-squares solution is numpy's minimum-norm
``lstsq``, equal to ``pinv(MᵀM)Mᵀy``, and a reference whose perturbations do not determine it (fewer independent
ones than superpixels, as too small a ``lime_samples`` gives) is refused, where ``pinv`` would return one fit of
many; quickshift runs in float64 whatever the input's dtype (skimage keeps float32
input in float32).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from benchbd.errors import BenchbdError

#: sRGB (linear) to CIE XYZ, and the D65 white point: the constants of skimage's rgb2lab.
SRGB_TO_XYZ = np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]])
D65_WHITE = np.array([0.95047, 1.0, 1.08883])
#: LIME's quickshift parameters for images (lime_image.LimeImageExplainer's default segmentation).
LIME_KERNEL_SIZE, LIME_RATIO, LIME_MAX_DIST = 4.0, 0.2, 200.0
#: Perturbed images handed to the model's ``outputs`` at once (it batches them further).
PERTURBED_PER_PASS = 16_384


# -- superpixels --------------------------------------------------------------------------------------------------
def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (D65) of sRGB values, shape (..., 3): skimage's ``rgb2lab``, whose formulas assume [0, 1] and
    extend past 1 as they stand."""
    linear = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = linear @ SRGB_TO_XYZ.T / D65_WHITE
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def _overlap(size: int, shift: int) -> tuple[slice, slice]:
    """Positions p along one axis whose neighbour p + ``shift`` lies inside ``size``, and those neighbours."""
    count = max(0, size - abs(shift))
    return slice(max(0, -shift), max(0, -shift) + count), slice(max(0, shift), max(0, shift) + count)


def quickshift(
    images: np.ndarray,
    kernel_size: float = LIME_KERNEL_SIZE,
    ratio: float = LIME_RATIO,
    max_dist: float = LIME_MAX_DIST,
) -> np.ndarray:
    """Quick shift superpixels (Vedaldi & Soatto 2008) of RGB images (N, H, W, 3), float in the scale given (as
    skimage takes a float image): labels (N, H, W), 0..S−1 in each image.

    skimage's ``segmentation.quickshift`` with ``sigma=0`` and its default tie-breaking seed (42): pixels are
    points (ratio·L*a*b*, row, column); a pixel's density is the sum of exp(−d²/2σ²), σ = ``kernel_size``, over
    the pixels within ⌈3σ⌉ rows and columns (skimage's tie-breaking noise first, as skimage sums them); each pixel
    links to the nearest pixel of higher density in that window, unless it is farther than ``max_dist``; each
    tree of links is a superpixel.
    """
    features = ratio * rgb_to_lab(images.astype(np.float64))
    count, height, width, _ = features.shape
    reach = int(np.ceil(3 * kernel_size))
    offsets = [(dr, dc) for dr in range(-reach, reach + 1) for dc in range(-reach, reach + 1)]  # skimage's order

    # Both passes below compute each offset's distances again rather than keep them (as skimage does): kept, they
    # would take (2⌈3σ⌉ + 1)² arrays of the images' size, 650 MB for 128 images of 32×32 at σ = 4.
    def windows(dr: int, dc: int) -> tuple[tuple[slice, slice, slice], tuple[slice, slice, slice], np.ndarray]:
        (rows, rows_to), (cols, cols_to) = _overlap(height, dr), _overlap(width, dc)
        here, there = (slice(None), rows, cols), (slice(None), rows_to, cols_to)
        squared = ((features[here] - features[there]) ** 2).sum(axis=-1) + dr * dr + dc * dc
        return here, there, squared

    noise = np.random.default_rng(42).normal(scale=1e-5, size=(height, width))  # skimage's tie-breaking
    density = np.broadcast_to(noise, (count, height, width)).copy()
    exponent_per_squared = -0.5 / (kernel_size * kernel_size)  # skimage's factor, computed as skimage does
    for dr, dc in offsets:
        here, _, squared = windows(dr, dc)
        density[here] += np.exp(squared * exponent_per_squared)
    index = np.broadcast_to(np.arange(height * width).reshape(height, width), (count, height, width))
    parent, closest = index.copy(), np.full((count, height, width), np.inf)
    for dr, dc in offsets:
        here, there, squared = windows(dr, dc)
        nearer = (density[there] > density[here]) & (squared < closest[here])
        closest[here] = np.where(nearer, squared, closest[here])
        parent[here] = np.where(nearer, index[there], parent[here])
    parent = parent.reshape(count, -1)
    roots = np.sqrt(closest.reshape(count, -1)) > max_dist
    parent[roots] = index.reshape(count, -1)[roots]
    while True:
        hop = np.take_along_axis(parent, parent, axis=1)
        if np.array_equal(hop, parent):
            break
        parent = hop
    return np.stack([np.unique(row, return_inverse=True)[1].reshape(height, width) for row in parent])


# -- signatures and their distance ----------------------------------------------------------------------------
@dataclass(frozen=True)
class LimeProbe:
    """Reference images, their superpixels and LIME's perturbations of each: drawn once, shown to every model."""

    images: np.ndarray
    segments: np.ndarray
    keep: list[np.ndarray]
    fill: np.ndarray

    @classmethod
    def draw(cls, images: np.ndarray, samples: int, rng: np.random.Generator) -> LimeProbe:
        """Superpixels of the uint8 ``images`` (N, H, W, 3) and ``samples`` keep-vectors for each: superpixels kept
        with probability ½, the first vector all kept; hidden ones take the images' mean colour. Raises
        :class:`BenchbdError` when an image's keep-vectors do not determine the weights of its superpixels (fewer
        independent ones than superpixels): every model's signature would be one fit of many, not the model's."""
        segments = quickshift(images.astype(np.float64))
        keep = []
        for i, labels in enumerate(segments):
            rows = rng.integers(0, 2, size=(samples, int(labels.max()) + 1), dtype=np.uint8)
            rows[0] = 1
            if (rank := np.linalg.matrix_rank(rows.astype(np.float64))) < rows.shape[1]:
                raise BenchbdError(f"zest: reference image {i} has {rows.shape[1]} superpixels and its {samples} "
                                   f"perturbations determine only {rank} of their weights: draw more (lime_samples; "
                                   "Zest's is 1000)")
            keep.append(rows)
        fill = images.reshape(-1, images.shape[-1]).mean(axis=0).round().astype(np.uint8)
        return cls(images, segments, keep, fill)

    def perturbed(self, i: int) -> np.ndarray:
        """Image ``i``'s perturbations (samples, H, W, 3), uint8."""
        shown = self.keep[i][:, self.segments[i]].astype(bool)[..., None]
        return np.where(shown, self.images[i][None], self.fill)


def lime_signature(probe: LimeProbe, outputs: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """A model's Zest signature (N, S, C): per reference image the least-squares weights from its superpixels' keep
    vector to the model's ``outputs`` (logits, of uint8 images), zero-padded to the most superpixels S of any
    reference."""
    widest = max(rows.shape[1] for rows in probe.keep)
    weights: list[np.ndarray] = []
    per_pass = max(1, PERTURBED_PER_PASS // len(probe.keep[0]))
    for start in range(0, len(probe.keep), per_pass):
        chunk = range(start, min(start + per_pass, len(probe.keep)))
        answers = outputs(np.concatenate([probe.perturbed(i) for i in chunk])).astype(np.float64)
        for i, y in zip(chunk, np.split(answers, len(chunk))):
            solution = np.linalg.lstsq(probe.keep[i].astype(np.float64), y, rcond=None)[0]
            weights.append(np.pad(solution, ((0, widest - len(solution)), (0, 0))))
    return np.stack(weights)


def _unit_columns(w: np.ndarray) -> np.ndarray:
    """``w``'s columns scaled to length 1; a zero column stays zero (its cosine with anything is then 0)."""
    norms = np.linalg.norm(w, axis=0)
    return w / np.where(norms > 0, norms, 1.0)


def zest_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Zest's cosine distance between two signatures of the same probe ((N, S, C) each; any leading shape), in
    [0, 2]: 1 − cos of the flattened signatures (1 when exactly one of them is all zero, 0 when both are).

    Each class (column) of ``b`` is first matched to one of ``a``: repeatedly the pair of unmatched columns at the
    smallest cosine distance. Models that agree up to the order of their classes are at distance 0."""
    if a.shape != b.shape:
        raise ValueError(f"signatures of different shapes {a.shape} and {b.shape}: not of the same probe and classes")
    wa, wb = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    cost = 1.0 - _unit_columns(wa).T @ _unit_columns(wb)
    matched = np.empty(wa.shape[1], dtype=int)
    for _ in range(wa.shape[1]):
        j, k = np.unravel_index(np.argmin(cost), cost.shape)
        matched[j] = k
        cost[j, :] = cost[:, k] = np.inf
    flat_a, flat_b = wa.ravel(), wb[:, matched].ravel()
    norms = np.linalg.norm(flat_a) * np.linalg.norm(flat_b)
    if norms == 0:
        return float(flat_a.any() != flat_b.any())
    return max(0.0, 1.0 - float(flat_a @ flat_b) / norms)
