"""The code paths a GPU takes, run on the CPU where torch allows it (issue 21 item 2): bf16 autocast in training
and inference, and the channels_last layout of models and images."""

from __future__ import annotations

from dataclasses import replace

import torch

from benchbd.data.images import ImageData
from benchbd.training.profiles import PROFILES
from benchbd.training.trainer import Trainer
from benchbd_builtins.models import small_cnn


def test_training_and_inference_run_under_bf16_autocast(colour_data: ImageData) -> None:
    """The CUDA path's autocast on the CPU: the convolutions compute in bfloat16, the weights stay float32, and the
    model still learns the four colours (chance is 25%)."""
    trainer = Trainer(replace(PROFILES["fast"], epochs=3, precision="bf16"), torch.device("cpu"), seed=0)
    assert Trainer(PROFILES["fast"], torch.device("cpu"), seed=0).use_bf16 is False  # "auto": off on a CPU
    assert PROFILES["fast"].uses_bf16("cuda") and not replace(PROFILES["fast"], precision="fp32").uses_bf16("cuda")
    model = trainer.place(small_cnn(colour_data.num_classes))
    seen: list[torch.dtype] = []
    model.backbone[0][0].register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    trainer.fit(model, colour_data.x_train, colour_data.y_train)
    assert seen and set(seen) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in model.parameters())
    predictions = trainer.predict(model, colour_data.x_test)
    assert seen[-1] == torch.bfloat16  # inference too
    accuracy = (predictions.numpy() == colour_data.y_test).mean()
    assert accuracy > 0.8, accuracy


def test_models_and_images_are_channels_last() -> None:
    trainer = Trainer(PROFILES["fast"], torch.device("cpu"), seed=0)
    model = trainer.place(small_cnn(4))
    conv = model.backbone[0][0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    images = trainer.images(torch.zeros(2, 32, 32, 3, dtype=torch.uint8).numpy())
    assert images.shape == (2, 3, 32, 32) and images.is_contiguous(memory_format=torch.channels_last)


def test_float32_inference_under_a_bf16_profile(colour_data: ImageData) -> None:
    """``float32=True`` (what RTTD measures its distances with) turns the profile's bf16 autocast off: the logits and
    features are a float32 trainer's, where the bf16 ones differ by bf16's rounding."""
    bf16 = Trainer(replace(PROFILES["fast"], precision="bf16"), torch.device("cpu"), seed=0)
    fp32 = Trainer(replace(PROFILES["fast"], precision="fp32"), torch.device("cpu"), seed=0)
    torch.manual_seed(0)
    model = bf16.place(small_cnn(colour_data.num_classes))
    x = colour_data.x_test[:64]
    reference = fp32.logits(model, x)
    assert torch.equal(bf16.logits(model, x, float32=True), reference)
    assert not torch.allclose(bf16.logits(model, x), reference, atol=1e-4)
    assert (bf16.features(model, x, float32=True) == fp32.features(model, x)).all()
    assert torch.equal(bf16.predict(model, x), bf16.logits(model, x).argmax(1))
