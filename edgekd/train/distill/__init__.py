"""Distillation: losses, teacher ensembles and the training loop."""
