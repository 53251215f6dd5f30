"""``frequency``: frequency-domain detection of triggered inputs (Zeng, Park, Mao & Jia, "Rethinking the
Backdoor Attacks' Triggers: A Frequency Perspective", ICCV 2021), as BaDLoss section 4.2 compares with it.

Section 3 of the paper shows that most triggers add high-frequency artifacts visible in the 2-D DCT spectrum;
section 4 trains a binary CNN on DCT spectra to tell clean from triggered inputs. As in the authors' released
detector, the input is the orthonormal 2-D DCT (type II) of each RGB channel of the image, and the detector is
their six-layer CNN: three blocks of two 3×3 convolutions (32, 64, 128 channels) each followed by ELU and batch
norm, 2×2 max-pooling and dropout 0.2/0.3/0.4, then one linear layer to two classes, L2 weight decay 1e-4.

Where the paper trains on clean images against images carrying a variety of synthetic triggers, BaDLoss
(sections 4.2, 5.1, 5.2) trains it on its own probe set, the defender's incomplete model of attacks: the clean
probes P1 against the backdoor probes P2, made with the probe trigger (:func:`inject_probes`: the attack's probe
variant in the one-attack setting, the flipped patch otherwise), drawn from ``context.probe_seed`` as BaDLoss
draws them, so both defenses of a cell see one probe set. Mislabelled probes differ from clean ones only by
label, which a spectrum cannot see, so they are left out. We train with Adam (the released code uses Adadelta)
for ``epochs`` epochs. Every training example is scored with the detector's probability of "triggered"; those
above 0.5 are flagged. The probes are trusted examples, which the harness never judges: the detector is not
scored on the images it trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.fft
import torch
import torch.nn.functional as F
from torch import nn

from benchbd import ExampleContext, ExampleDefense, ExampleVerdict, hookimpl
from benchbd.params import check
from benchbd_builtins.defenses.probes import inject_probes

INFERENCE_BATCH = 1024


def dct_spectra(x: np.ndarray) -> torch.Tensor:
    """Orthonormal 2-D DCT (type II) of each channel of uint8 (N, H, W, C) images in [0, 1] scale: (N, C, H, W)."""
    spectra = scipy.fft.dctn(x.astype(np.float32) / 255, type=2, axes=(1, 2), norm="ortho")
    return torch.from_numpy(np.ascontiguousarray(spectra.transpose(0, 3, 1, 2)))


def _block(channels_in: int, channels_out: int, dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for c_in in (channels_in, channels_out):
        layers += [nn.Conv2d(c_in, channels_out, 3, padding=1), nn.ELU(), nn.BatchNorm2d(channels_out)]
    return layers + [nn.MaxPool2d(2), nn.Dropout(dropout)]


def detector_cnn(image_size: int = 32, channels: int = 3) -> nn.Sequential:
    """The paper's six-layer CNN on DCT spectra; output: logits of (clean, triggered)."""
    side = image_size // 8
    return nn.Sequential(
        *_block(channels, 32, 0.2),
        *_block(32, 64, 0.3),
        *_block(64, 128, 0.4),
        nn.Flatten(),
        nn.Linear(128 * side * side, 2),
    )


def train_detector(
    clean: np.ndarray,
    triggered: np.ndarray,
    *,
    epochs: int,
    seed: int,
    device: torch.device = torch.device("cpu"),
    batch_size: int = 64,
    lr: float = 1e-3,
) -> nn.Sequential:
    """Train :func:`detector_cnn` on the spectra of uint8 ``clean`` (label 0) and ``triggered`` (label 1) images."""
    torch.manual_seed(seed)
    spectra = dct_spectra(np.concatenate([clean, triggered])).to(device, memory_format=torch.channels_last)
    labels = torch.cat([torch.zeros(len(clean)), torch.ones(len(triggered))]).long().to(device)
    model = detector_cnn(clean.shape[1], clean.shape[3]).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(labels), generator=generator).to(device)
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            loss = F.cross_entropy(model(spectra[index]), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def triggered_probability(
    detector: nn.Module, x: np.ndarray, device: torch.device = torch.device("cpu")
) -> np.ndarray:
    """The detector's probability that each uint8 image carries a trigger."""
    detector.eval()
    out = []
    for start in range(0, len(x), INFERENCE_BATCH):
        spectra = dct_spectra(x[start : start + INFERENCE_BATCH]).to(device, memory_format=torch.channels_last)
        out.append(detector(spectra).softmax(1)[:, 1].cpu())
    return torch.cat(out).double().numpy()


@dataclass
class FrequencyAnalysis(ExampleDefense):
    name: ClassVar[str] = "frequency"
    description: ClassVar[str] = "CNN on DCT spectra, trained on BaDLoss's probes to spot triggers (Zeng et al. 2021)"

    epochs: int = 10
    threshold: float = 0.5
    probes: int = 250

    def __post_init__(self) -> None:
        check(self.epochs >= 1, self.name, "epochs", ">= 1", self.epochs)
        check(0 < self.threshold < 1, self.name, "threshold", "in (0, 1)", self.threshold)
        check(self.probes >= 1, self.name, "probes", "at least 1", self.probes)

    def score_examples(self, context: ExampleContext) -> ExampleVerdict:
        probes = inject_probes(context, self.probes * context.probe_multiplier)
        device = context.trainer.device
        detector = train_detector(
            probes.x[probes.clean],
            probes.x[probes.backdoor],
            epochs=self.epochs,
            seed=int(context.rng.integers(2**31)),
            device=device,
        )
        scores = triggered_probability(detector, context.x_train, device)
        details = {"warnings": probes.warnings} if probes.warnings else {}
        return ExampleVerdict(scores, scores > self.threshold, details=details)


@hookimpl
def benchbd_defenses() -> list[type[ExampleDefense]]:
    return [FrequencyAnalysis]
