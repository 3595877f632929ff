"""What a PyTorch teacher's outputs hold: logits, or probabilities (a network ending in softmax).

Distillation softens teacher logits with softmax(z / T). Probabilities taken as logits are squeezed into [0, 1],
so softmax of them is nearly uniform and the student learns almost nothing from the teacher (a trial's softmax
teacher at 97.7% taught a student to 82.0%, the same teacher giving logits to 95.5%). Their log is a valid set of
logits (softmax(log p) = p), so a teacher found to give probabilities has its outputs replaced by their log, as
tables' ONNX teachers already do (teachers[].outputs, train/teacher_kinds.py onnx_logits).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgekd.train.distill.cache import LOG_OF_PROBABILITIES  # the teacher-output cache keys on it
from edgekd.train.teacher_kinds import PROBABILITY_FLOOR

# Rows checked: a few hundred images tell a softmax output from logits beyond doubt (logits are rarely all
# non-negative, and never sum to 1 on every row).
PROBE_ROWS = 256


def are_probabilities(outputs: np.ndarray) -> bool:
    """True when `outputs` (batch, classes) are non-negative and every row sums to 1: the rule tables' ONNX
    teachers use for teachers[].outputs auto."""
    outputs = np.asarray(outputs, dtype=np.float64)
    return (outputs.ndim == 2 and outputs.shape[1] > 1 and len(outputs) > 0 and outputs.min() >= 0
            and bool(np.allclose(outputs.sum(1), 1.0, atol=1e-3)))


def _log_of_output(_module: nn.Module, _args, output: torch.Tensor) -> torch.Tensor:
    return torch.log(output.clamp(PROBABILITY_FLOOR, 1.0))  # log(0) would be -inf; a floor like the tables'


def take_log_of_outputs(model: nn.Module) -> nn.Module:
    """Make `model` return the log of its outputs (a forward hook: module names, and so hints, stay the same)."""
    if not getattr(model, LOG_OF_PROBABILITIES, False):
        model.register_forward_hook(_log_of_output)
        setattr(model, LOG_OF_PROBABILITIES, True)
    return model


@torch.no_grad()
def outputs_as_logits(model: nn.Module, probe, setting: str = "auto") -> bool:
    """Apply teachers[].outputs to a PyTorch teacher: "probabilities" takes their log, "logits" leaves them, "auto"
    takes their log when they are probabilities on `probe` (the first PROBE_ROWS inputs are run). Returns whether the
    outputs are now their log."""
    if setting == "logits" or getattr(model, LOG_OF_PROBABILITIES, False):
        return bool(getattr(model, LOG_OF_PROBABILITIES, False))
    if setting == "auto":
        from edgekd.train.trainer import predict_logits

        if probe is None or len(probe) == 0 or not are_probabilities(predict_logits(model, probe[:PROBE_ROWS])):
            return False
    take_log_of_outputs(model)
    return True


def probe_inputs(data):
    """The inputs a teacher's outputs are judged on: the validation split's first rows, else the training split's."""
    return data.val.x[:PROBE_ROWS] if len(data.val) else data.train.x[:PROBE_ROWS]
