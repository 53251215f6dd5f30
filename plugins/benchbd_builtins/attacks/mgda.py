"""The min-norm solver of MGDA (Désidéri 2012; Sener & Koltun 2018, "Multi-Task Learning as Multi-Objective
Optimization"), as the blind attack uses it (Bagdasaryan & Shmatikov 2021, section 3.3, equation 2).

Given task gradients g_1..g_k, find α on the simplex that minimises ‖Σ α_i g_i‖². Everything here works on the
k×k Gram matrix G_ij = <g_i, g_j>: the closed form for two tasks (Sener & Koltun, algorithm 1) and Frank-Wolfe
with exact line search for three or more (their algorithm 2, with away steps: ours, see :func:`min_norm_coefficients`).
The gradients may first be normalised
(Sener & Koltun section 3.3's heuristics, kept by the blind-backdoor code): ``l2`` by their norm, ``loss`` by the
task's loss, ``loss+`` by both, ``none`` not at all.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import torch

Normalization = Literal["loss+", "loss", "l2", "none"]
NORMALIZATIONS: tuple[Normalization, ...] = ("loss+", "loss", "l2", "none")
#: Below this, a normaliser or a squared distance counts as zero.
EPS = 1e-12


def gram_matrix(grads: Sequence[Sequence[torch.Tensor]]) -> np.ndarray:
    """G_ij = <g_i, g_j> (float64) for k tasks, each a list of per-parameter gradient tensors."""
    flat = torch.stack([torch.cat([g.reshape(-1).float() for g in task]) for task in grads])
    return (flat @ flat.T).double().cpu().numpy()


def normalizers(gram: np.ndarray, losses: Sequence[float], kind: Normalization) -> np.ndarray:
    """The factor n_i each task gradient is divided by before solving."""
    norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
    values = np.asarray(losses, dtype=np.float64)
    factors = {"l2": norms, "loss": values, "loss+": values * norms, "none": np.ones_like(norms)}[kind]
    return np.maximum(factors, EPS)


def min_norm_pair(g11: float, g12: float, g22: float) -> float:
    """γ in [0, 1] minimising ‖γ g_1 + (1 − γ) g_2‖² (Sener & Koltun, algorithm 1)."""
    denominator = g11 + g22 - 2 * g12  # = ‖g_1 − g_2‖²
    if denominator <= EPS:
        return 0.5
    return float(np.clip((g22 - g12) / denominator, 0.0, 1.0))


def min_norm_coefficients(gram: np.ndarray, *, tol: float = 1e-12, max_iter: int = 1000) -> np.ndarray:
    """α on the simplex minimising αᵀ G α: closed form for k ≤ 2, Frank-Wolfe for k ≥ 3.

    Frank-Wolfe with away steps (Lacoste-Julien & Jaggi 2015), which converges linearly where plain Frank-Wolfe
    (Sener & Koltun's algorithm 2) zig-zags when the minimiser lies inside a face. From the uniform point, each
    iteration either moves towards the vertex e_s with the smallest (Gα)_s (the linear minimiser over the
    simplex) or away from the used vertex e_v with the largest (Gα)_v, whichever direction is steeper, with the
    exact step for the quadratic. It stops when the duality gap αᵀGα − (Gα)_s, half an upper bound on the
    suboptimality, is below ``tol`` times the largest squared gradient norm.
    """
    k = len(gram)
    if k == 1:
        return np.ones(1)
    if k == 2:
        gamma = min_norm_pair(gram[0, 0], gram[0, 1], gram[1, 1])
        return np.array([gamma, 1 - gamma])
    alpha = np.full(k, 1.0 / k)
    threshold = tol * max(float(np.max(np.diag(gram))), EPS)
    for _ in range(max_iter):
        g_alpha = gram @ alpha
        current = float(alpha @ g_alpha)
        s = int(np.argmin(g_alpha))
        used = np.flatnonzero(alpha > 0)
        v = int(used[np.argmax(g_alpha[used])])
        toward_gap, away_gap = current - g_alpha[s], g_alpha[v] - current
        if toward_gap <= threshold:
            break
        direction = -alpha.copy()
        if toward_gap >= away_gap:
            direction[s] += 1
            max_step = 1.0
        else:
            direction = -direction
            direction[v] -= 1
            max_step = alpha[v] / (1 - alpha[v])
        curvature = float(direction @ gram @ direction)
        step = max_step if curvature <= EPS else min(max_step, -float(direction @ g_alpha) / curvature)
        alpha = np.clip(alpha + step * direction, 0.0, None)
        alpha /= alpha.sum()
    return alpha


def mgda_scales(gram: np.ndarray, losses: Sequence[float], normalization: Normalization) -> np.ndarray:
    """MGDA's loss coefficients: the min-norm α of the normalised gradients ĝ_i = g_i / n_i.

    As in Sener & Koltun's and the blind-backdoor code, α multiplies the raw losses: the combined loss is
    Σ α_i ℓ_i, not Σ α_i ℓ_i / n_i.
    """
    n = normalizers(gram, losses, normalization)
    return min_norm_coefficients(gram / np.outer(n, n))
