"""Catch device mix-ups without a GPU: record every tensor edgekd creates without saying on which device.

On a CPU-only machine a tensor made with torch's default device and one on "the model's device" are both
on the CPU, so a forgotten `device=` passes every CPU test and fails on the first GPU (issue 13:
shift_flip's draws, the hint adapters). UnplacedTensors is a TorchFunctionMode that sees each factory
call (arange, randn, zeros, ...) and records those made by edgekd's own code without a `device` argument.
Tensors made by torch itself (optimizers) or in a module's constructor (they move with the module) are
not recorded: modules are checked by building the student in another dtype (see test_device.py).
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

import edgekd

EDGEKD = str(Path(edgekd.__file__).parent)
TORCH = str(Path(torch.__file__).parent)
FACTORIES = {torch.arange, torch.randn, torch.rand, torch.randint, torch.randperm, torch.zeros, torch.ones, torch.empty,
             torch.full, torch.tensor, torch.linspace, torch.eye, torch.normal}


class UnplacedTensors(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FACTORIES and "device" not in kwargs:
            caller = _first_caller_outside_torch()
            if caller and caller.startswith(EDGEKD) and not caller.endswith(MODULE_INIT):
                self.found.append(f"{caller}: torch.{func.__name__} without device=")
        return func(*args, **kwargs)


MODULE_INIT = " (nn.Module.__init__)"


def _first_caller_outside_torch() -> str | None:
    """file:line of the code that asked for the tensor; marked when it is a module's constructor (its tensors
    move with the module's .to(), and test_device.py checks modules by dtype)."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if not name.startswith(TORCH) and name != __file__:
            in_init = frame.f_code.co_name == "__init__" and isinstance(frame.f_locals.get("self"), torch.nn.Module)
            return f"{name}:{frame.f_lineno}" + (MODULE_INIT if in_init else "")
        frame = frame.f_back
    return None
