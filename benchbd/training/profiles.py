"""Named training profiles; the profile's name is recorded with every result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal

from benchbd.errors import BenchbdError


Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[Precision, ...] = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class TrainingProfile:
    """How a model is trained. ``shift`` is the random translation of the ±shift-pixel augmentation (0: none).
    ``precision``: ``auto`` runs the forward passes under bf16 autocast on CUDA and in fp32 on a CPU; ``bf16`` and
    ``fp32`` do so on every device (on a CPU, bf16 pays where the processor multiplies bf16 in hardware, e.g. AMX:
    docs/findings.md, "The trainer on a CPU")."""

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
    precision: Precision = "auto"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def uses_bf16(self, device_type: str) -> bool:
        """Whether training and inference on a device of ``device_type`` ("cuda", "cpu") run under bf16 autocast."""
        return self.precision == "bf16" or (self.precision == "auto" and device_type == "cuda")


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


def with_options(profile: TrainingProfile, epochs: int | None = None, precision: Precision | None = None) -> TrainingProfile:
    """``profile`` trained ``epochs`` epochs at ``precision`` (``None``: as the profile says), named
    ``NAME (epochs=N, precision=P)`` with what differs, so every record and table says so."""
    changes = {key: value for key, value in (("epochs", epochs), ("precision", precision))
               if value is not None and value != getattr(profile, key)}
    if not changes:
        return profile
    label = ", ".join(f"{key}={value}" for key, value in changes.items())
    return replace(profile, name=f"{profile.name} ({label})", **changes)
