"""Model building: built-in small CNN families, torchvision:NAME and user factories."""
from edgekd.train.models.loading import build_model, count_parameters, load_checkpoint, save_checkpoint, save_torch
from edgekd.train.models.zoo import BUILTIN_MODELS

__all__ = ["BUILTIN_MODELS", "build_model", "count_parameters", "load_checkpoint", "save_checkpoint", "save_torch"]
