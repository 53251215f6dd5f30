"""Named training profiles; the profile's name is recorded with every result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal

from benchbd.errors import BenchbdError


@dataclass(frozen=True)
class TrainingProfile:
    """How a model is trained. ``shift`` is the random translation of the ±shift-pixel augmentation (0: none)."""

    name: str
    description: str
    model: str
    epochs: int
    batch_size: int
    optimizer: Literal["sgd", "adamw"]
    lr: float
    weight_decay: float
    schedule: Literal["onecycle", "cosine"]
    shift: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


PROFILES: dict[str, TrainingProfile] = {
    profile.name: profile
    for profile in (
        TrainingProfile(
            name="fast",
            description="small-cnn, 8 epochs, SGD+Nesterov one-cycle, batch 64, ±2 px shifts (the default)",
            model="small-cnn",
            epochs=8,
            batch_size=64,
            optimizer="sgd",
            lr=0.05,
            weight_decay=5e-4,
            schedule="onecycle",
            shift=2,
        ),
        TrainingProfile(
            name="cpu",
            description="narrow-cnn, 8 epochs, SGD+Nesterov one-cycle, batch 64, no augmentation: BaDLoss's tables on gtsrb:every=2 on a 2-core CPU (docs/findings.md)",
            model="narrow-cnn",
            epochs=8,
            batch_size=64,
            optimizer="sgd",
            lr=0.05,
            weight_decay=5e-4,
            schedule="onecycle",
            shift=0,
        ),
        TrainingProfile(
            name="paper",
            description="BaDLoss appendix A.4: ResNet-50, 100 epochs, AdamW lr 1e-3 wd 1e-4, cosine, batch 256, no augmentation",
            model="resnet50",
            epochs=100,
            batch_size=256,
            optimizer="adamw",
            lr=1e-3,
            weight_decay=1e-4,
            schedule="cosine",
            shift=0,
        ),
    )
}


def get_profile(name: str) -> TrainingProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise BenchbdError(f"unknown profile '{name}'; valid: {', '.join(PROFILES)}") from None


def with_epochs(profile: TrainingProfile, epochs: int | None) -> TrainingProfile:
    """``profile`` trained ``epochs`` epochs (``None``: as it is), named ``NAME (epochs=N)`` so every record and
    table says so."""
    if epochs is None or epochs == profile.epochs:
        return profile
    return replace(profile, name=f"{profile.name} (epochs={epochs})", epochs=epochs)
