"""``wanet``: WaNet, the warping-based backdoor (Nguyen & Tran, ICLR 2021, "WaNet – Imperceptible Warping-based
Backdoor Attack", section 3), as BaDLoss section 4.1 uses it.

The trigger is a fixed, smooth, low-magnitude warping field (WaNet section 3.2): a k×k grid of control offsets
(both axes) drawn uniformly in [-1, 1] and normalised by their mean absolute value, upsampled bicubically to the
image size, scaled by s / image size, added to the identity sampling grid, clipped to [-1, 1], and applied with
``grid_sample``. Poisoned examples are relabelled to the target (dirty label).

Noise mode (WaNet section 3.3), off by default because BaDLoss does not use it: besides the backdoor examples,
``cross_ratio`` times as many other examples are warped with the backdoor field plus a random per-pixel
perturbation of the sampling grid (uniform in ±1 / image size grid units, about half a pixel) and keep their true
labels, so that the model learns the exact field rather than any warp. Those examples are changed by the attacker,
so they are in the poison mask (``poison`` returns them).

Defaults (BaDLoss section 4.1, stronger fields than WaNet's k = 4, s = 0.5 so that the backdoor is learned):
CIFAR-10 s = 0.75, k = 6, 10% poisoned; GTSRB s = 1.0, k = 8, 20% poisoned. The probe variant (BaDLoss section 5.1)
is a new random warping field with the same k and s.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from benchbd import DataPoisoningAttack, check, float_images, hookimpl, uint8_images
from benchbd.errors import BenchbdError


def identity_grid(height: int, width: int) -> torch.Tensor:
    """The ``grid_sample`` grid (1, H, W, 2) that samples every pixel centre (align_corners=True); last axis (x, y)."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
    return torch.stack((xs, ys), dim=-1)[None]


def warping_field(height: int, width: int, grid_size: int, strength: float, rng: np.random.Generator) -> torch.Tensor:
    """WaNet's backdoor sampling grid (1, H, W, 2), section 3.2: identity plus upsampled normalised control offsets."""
    control = torch.from_numpy(rng.uniform(-1.0, 1.0, size=(1, 2, grid_size, grid_size))).float()
    control = control / control.abs().mean()
    offsets = F.interpolate(control, size=(height, width), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    scale = strength / torch.tensor([width, height], dtype=torch.float32)
    return (identity_grid(height, width) + offsets * scale).clamp(-1, 1)


def warp(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Resample images (N, 3, H, W) at ``grid`` (1 or N, H, W, 2), bilinear, on the images' device."""
    grid = grid.to(device=x.device, dtype=x.dtype).expand(len(x), -1, -1, -1)
    return F.grid_sample(x, grid, mode="bilinear", align_corners=True)


def warp_uint8(x: np.ndarray, grid: torch.Tensor) -> np.ndarray:
    """:func:`warp` on uint8 (N, H, W, 3) images, rounded back to uint8."""
    return uint8_images(warp(float_images(x), grid))


@dataclass
class WaNetAttack(DataPoisoningAttack):
    name: ClassVar[str] = "wanet"
    description: ClassVar[str] = "WaNet: imperceptible smooth warping field, dirty label (Nguyen & Tran 2021)"
    probe_multiplier: ClassVar[int] = 3
    family_defaults: ClassVar[dict[str, dict[str, object]]] = {
        "cifar10": {"strength": 0.75, "grid_size": 6, "ratio": 0.1},
        "gtsrb": {"strength": 1.0, "grid_size": 8, "ratio": 0.2},
    }

    ratio: float = 0.1
    #: s: the warping strength; displacements are of the order of s / image size in grid units (s / 2 pixels).
    strength: float = 0.75
    #: k: the control grid is k×k.
    grid_size: int = 6
    #: Noise mode (WaNet section 3.3): also warp ``cross_ratio`` × the backdoor count with a noisy field, labels kept.
    noise: bool = False
    cross_ratio: float = 2.0

    _grid: torch.Tensor | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check(self.strength >= 0, self.name, "strength", ">= 0", self.strength)
        check(self.grid_size >= 2, self.name, "grid_size", ">= 2", self.grid_size)
        check(self.cross_ratio >= 0, self.name, "cross_ratio", ">= 0", self.cross_ratio)

    def check_dataset(self, num_classes: int, image_shape: tuple[int, int, int]) -> None:
        super().check_dataset(num_classes, image_shape)
        height, width = image_shape[:2]
        if self.grid_size > min(height, width):
            raise BenchbdError(
                f"{self.name}: parameter 'grid_size' must be at most the image side; "
                f"got {self.grid_size} for a {height}x{width} image"
            )

    @property
    def sampling_grid(self) -> torch.Tensor:
        """The backdoor sampling grid (1, H, W, 2), on the CPU."""
        if self._grid is None:
            raise BenchbdError(f"{self.name}: the warping field is built by prepare(); call it before using the trigger")
        return self._grid

    def prepare(self, x_train: np.ndarray, y_train: np.ndarray, num_classes: int, rng: np.random.Generator) -> None:
        height, width = x_train.shape[1:3]
        self._grid = warping_field(height, width, self.grid_size, self.strength, rng)

    def trigger(self, x: torch.Tensor, *, test_time: bool = False) -> torch.Tensor:
        if x.shape[-2:] != self.sampling_grid.shape[1:3]:
            size = tuple(self.sampling_grid.shape[1:3])
            raise BenchbdError(f"{self.name}: the field is {size}, the images {tuple(x.shape[-2:])}")
        return warp(x, self.sampling_grid)

    @property
    def poison_fraction(self) -> float:
        return self.ratio * (1 + self.cross_ratio) if self.noise else self.ratio

    def extra_count(self, n_train: int) -> int:
        return round(self.cross_ratio * self.poison_count(n_train)) if self.noise else 0

    def noisy_fields(self, noise: np.ndarray) -> torch.Tensor:
        """The noise-mode grids (N, H, W, 2): the backdoor field plus ``noise`` (uniform in [-1, 1]) / image size."""
        height, width = self.sampling_grid.shape[1:3]
        scale = 1 / torch.tensor([width, height], dtype=torch.float32)
        return (self.sampling_grid + torch.from_numpy(noise) * scale).clamp(-1, 1)

    def poison(self, x: np.ndarray, y: np.ndarray, available: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Warp and relabel ``ratio`` of the training set; in noise mode also warp ``cross_ratio`` times as many other
        available examples with a noisy field, labels kept. Returns the indices of both (all are attacker-made)."""
        backdoor = super().poison(x, y, available, rng)
        if not self.noise:
            return backdoor
        free = available.copy()
        free[backdoor] = False
        pool = np.flatnonzero(free)
        count = self.extra_count(len(y))
        if count > len(pool):
            raise BenchbdError(
                f"{self.name}: noise mode needs {count} more examples (cross_ratio {self.cross_ratio}) "
                f"but only {len(pool)} are free"
            )
        noisy = np.sort(rng.choice(pool, size=count, replace=False))
        height, width = self.sampling_grid.shape[1:3]
        noise = rng.random((count, height, width, 2), dtype=np.float32) * 2 - 1
        x[noisy] = warp_uint8(x[noisy], self.noisy_fields(noise))
        return np.union1d(backdoor, noisy)

    def probe(self, rng: np.random.Generator) -> WaNetAttack:
        height, width = self.sampling_grid.shape[1:3]
        probe = replace(self)
        probe._grid = warping_field(height, width, self.grid_size, self.strength, rng)
        return probe


@hookimpl
def benchbd_attacks() -> list[type[DataPoisoningAttack]]:
    return [WaNetAttack]
