"""Shared fixtures: a small synth-signs file, so matrix tests train in seconds on a 2-core CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchbd.data.synth_signs import generate_synth_signs


@pytest.fixture(scope="session")
def small_signs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """synth-signs with 2,150 training and 860 test images, as an npz (use as ``npz:PATH``)."""
    path = tmp_path_factory.mktemp("data") / "synth-small.npz"
    np.savez(path, **generate_synth_signs(seed=0, n_train=2150, n_test=860))
    return path
