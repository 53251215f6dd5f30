"""distributed-patch: exactly two white squares in opposite corners; the probe uses the other diagonal."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchbd.errors import BenchbdError
from benchbd_builtins.attacks.distributed_patch import DistributedPatchAttack


def test_whitens_two_squares_in_opposite_corners_and_nothing_else() -> None:
    x = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.9
    out = DistributedPatchAttack(target=1).trigger(x)
    changed = (out != x).any(1)  # (N, H, W)
    assert changed.sum(dim=(1, 2)).tolist() == [8] * 5  # two 2×2 squares: under 1% of the image
    assert (out[:, :, 1:3, 1:3] == 1).all() and (out[:, :, 29:31, 29:31] == 1).all()
    assert torch.equal(out[~changed.unsqueeze(1).expand_as(out)], x[~changed.unsqueeze(1).expand_as(x)])


def test_probe_uses_the_other_two_corners() -> None:
    attack = DistributedPatchAttack(target=1)
    out = attack.probe(np.random.default_rng(0)).trigger(torch.zeros(1, 3, 32, 32))
    assert (out[..., 1:3, 29:31] == 1).all() and (out[..., 29:31, 1:3] == 1).all()
    assert out.sum() == 3 * 8


def test_relabels_the_poisoned_examples_to_the_target() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 200, (400, 32, 32, 3), dtype=np.uint8), rng.integers(0, 4, 400)
    attack = DistributedPatchAttack(target=3, ratio=0.05)
    poisoned_x, poisoned_y = x.copy(), y.copy()
    changed = attack.poison(poisoned_x, poisoned_y, np.ones(400, dtype=bool), rng)
    kept = np.setdiff1d(np.arange(400), changed)
    assert len(changed) == 20 and (poisoned_y[changed] == 3).all() and (poisoned_y[kept] == y[kept]).all()
    assert (poisoned_x[changed][:, 1:3, 1:3] == 255).all()


def test_refuses_squares_that_do_not_fit() -> None:
    with pytest.raises(BenchbdError, match="do not fit"):
        DistributedPatchAttack(size=8, margin=9).check_dataset(10, (32, 32, 3))
    with pytest.raises(BenchbdError, match="'size'"):
        DistributedPatchAttack(size=0)
