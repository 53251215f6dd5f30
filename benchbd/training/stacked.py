"""Several independent trainings of one architecture on one training set, run as one stacked model (issue 21 item 1).

The model unit's clean population is K trainings of one model on one training set, each with its own seed. Here
they run as one: the K models' parameters and batch-norm buffers are stacked (``torch.func.stack_module_state``),
one forward pass over the K models' batches runs under ``torch.func.vmap`` (a convolution with a batched weight
becomes one grouped convolution), and one optimiser steps the stacked parameters. Each model still trains as
:meth:`Trainer.fit` trains it alone:

- its data order and augmentation offsets come from its own trainer's seed (:meth:`Trainer.epoch_order`,
  :meth:`Trainer.training_batch`);
- its batch norm normalises by its own batch and updates its own running statistics (vmap over the stacked
  buffers);
- its optimiser state is its own: SGD (momentum, Nesterov, weight decay) and AdamW update each element alone and
  the learning-rate schedule depends on the step alone, so one optimiser over the stacked parameters is K
  optimisers, and the gradient of the summed losses holds each model's own gradient in its slice.

The weights equal the lone trainings' up to the order of floating-point sums (tests/test_stacked.py). Only the
honest cross-entropy loss is stacked; a loss computation of an attack or a defense (AEGIS's adversarial training)
trains alone. What it gains is measured by benchmarks/stacked_training.py, not assumed.
"""

from __future__ import annotations

import copy
import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from benchbd.errors import BenchbdError
from benchbd.training.trainer import Trainer, TrainingDiverged


def fit_stacked(
    trainers: Sequence[Trainer], models: Sequence[nn.Module], x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor,
    *, label: str = "training",
) -> None:
    """Train ``models[k]`` in place with ``trainers[k]`` (one profile and device, each its own seed) on uint8 images
    ``x`` and labels ``y``, all K at once; the models are left in eval mode, as :meth:`Trainer.fit` leaves one."""
    if not models or len(models) != len(trainers):
        raise BenchbdError(f"{label}: {len(models)} models for {len(trainers)} trainers")
    lead = trainers[0]
    if any(t.profile != lead.profile or t.device != lead.device for t in trainers):
        raise BenchbdError(f"{label}: stacked trainings must share one profile and device")
    x_device, y_device = lead.images(x), lead.labels(y)
    n, batch_size, epochs = len(y_device), lead.profile.batch_size, lead.profile.epochs
    if n == 0:
        raise BenchbdError(f"{label}: the training set is empty")
    for model in models:
        lead.place(model).train()
    template = copy.deepcopy(models[0]).to("meta")
    params, buffers = stack_module_state(list(models))
    batches = math.ceil(n / batch_size)
    optimizer = lead._optimizer(params.values())
    scheduler = lead._scheduler(optimizer, epochs * batches)
    generators = [torch.Generator(device=lead.device) for _ in trainers]

    def loss(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(template, (p, b), (xb,)), yb)

    stacked_loss = vmap(loss)
    for epoch in range(epochs):
        orders = [trainer.epoch_order(epoch, n) for trainer in trainers]
        loss_sums = torch.zeros(len(models), device=lead.device)
        for b in range(batches):
            step = epoch * batches + b
            indices = [order[b * batch_size : (b + 1) * batch_size] for order in orders]
            xb = torch.stack([t.training_batch(x_device, i, step, g) for t, i, g in zip(trainers, indices, generators)])
            yb = torch.stack([y_device[i] for i in indices])
            with lead._autocast():
                losses = stacked_loss(params, buffers, xb, yb)
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
            optimizer.step()
            scheduler.step()
            loss_sums += losses.detach().float()
        mean_losses = (loss_sums / batches).tolist()
        if not all(math.isfinite(value) for value in mean_losses):
            raise TrainingDiverged(f"{label}: training diverged (losses {mean_losses}) in epoch {epoch + 1}")
        if lead.on_epoch:
            lead.on_epoch(label, epoch + 1, epochs)
    with torch.no_grad():
        for k, model in enumerate(models):
            model.load_state_dict({name: tensor[k] for name, tensor in {**params, **buffers}.items()})
            model.eval()
