"""Built-in model architectures, all for 32×32 inputs.

- ``small-cnn``: three VGG-style blocks (two 3×3 conv-BN-ReLU, then max-pool) of 32-64-128 channels.
- ``narrow-cnn``: the same at half the width, 16-32-64 channels: a quarter of small-cnn's multiply-adds, for the
  ``cpu`` profile (*ours*, chosen by measurement: docs/findings.md).
- ``preact-resnet18``: He et al. 2016 pre-activation ResNet-18, BackdoorBench's default model.
- ``resnet50``: torchvision's ResNet-50 with a 3×3 stride-1 stem and no max-pool for 32×32 inputs
  (the BaDLoss paper's model, appendix A.4).
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from benchbd import ImageClassifier, ModelSpec, hookimpl


def _conv_block(channels_in: int, channels_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


def vgg_cnn(num_classes: int, width: int) -> ImageClassifier:
    """Three VGG-style blocks of ``width``, 2×``width`` and 4×``width`` channels, global average pool."""
    backbone = nn.Sequential(
        _conv_block(3, width), _conv_block(width, 2 * width), _conv_block(2 * width, 4 * width), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    return ImageClassifier(backbone, 4 * width, num_classes)


def small_cnn(num_classes: int) -> ImageClassifier:
    return vgg_cnn(num_classes, 32)


def narrow_cnn(num_classes: int) -> ImageClassifier:
    return vgg_cnn(num_classes, 16)


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al. 2016, "Identity Mappings in Deep Residual Networks", fig. 4e)."""

    def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(channels_in)
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False)
        self.shortcut = (
            nn.Conv2d(channels_in, channels_out, 1, stride, bias=False)
            if stride != 1 or channels_in != channels_out
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + shortcut


def preact_resnet18(num_classes: int) -> ImageClassifier:
    layers: list[nn.Module] = [nn.Conv2d(3, 64, 3, 1, 1, bias=False)]
    channels = 64
    for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [PreActBlock(channels, width, stride), PreActBlock(width, width, 1)]
        channels = width
    layers += [nn.BatchNorm2d(512), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return ImageClassifier(nn.Sequential(*layers), 512, num_classes)


def resnet50_32px(num_classes: int) -> ImageClassifier:
    net = torchvision.models.resnet50(weights=None)
    net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    return ImageClassifier(net, 2048, num_classes)


@hookimpl
def benchbd_models() -> list[ModelSpec]:
    return [
        ModelSpec("small-cnn", "3 VGG-style blocks of 32-64-128 channels; fast on CPU (the fast profile's model)", small_cnn),
        ModelSpec("narrow-cnn", "small-cnn at half width, 16-32-64 channels (the cpu profile's model)", narrow_cnn),
        ModelSpec("preact-resnet18", "PreAct-ResNet-18 (He et al. 2016), BackdoorBench's default", preact_resnet18),
        ModelSpec("resnet50", "ResNet-50 with a 3x3 stem and no max-pool for 32x32 (BaDLoss's model)", resnet50_32px),
    ]
