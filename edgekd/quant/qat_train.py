"""Distillation-aware QAT: fine-tune the fake-quantized student on the teacher ensemble's soft targets and labels."""
from __future__ import annotations

import numpy as np
import torch

from edgekd.quant.qat import QatModel
from edgekd.train.config import TrainConfig
from edgekd.train.distill.losses import kd_loss
from edgekd.train.trainer import TrainResult, train


def finetune_qat(qat: QatModel, x: np.ndarray, y: np.ndarray, soft_targets: torch.Tensor, cfg: TrainConfig,
                 temperature: float, alpha: float, seed: int) -> TrainResult:
    """Train in place. Activation ranges follow a moving average while training and are fixed at export."""
    qat.set_observer_mode("ema")
    # The soft targets stay where they were made; each batch's rows follow the model's output device.
    loss = lambda logits, idx, labels: kd_loss(  # noqa: E731
        logits, soft_targets[idx.to(soft_targets.device)].to(logits.device), labels, temperature, alpha)
    torch.manual_seed(seed)
    result = train(qat, torch.as_tensor(x), torch.as_tensor(y), cfg, loss, seed=seed, desc="qat")
    qat.set_observer_mode("frozen")
    return result
