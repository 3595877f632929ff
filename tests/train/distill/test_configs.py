"""The shipped Fashion-MNIST configs validate, and their hint layers exist in the models they name."""
from pathlib import Path

import torch

from edgekd.pipeline.config import load_config
from edgekd.train.distill.hints import StudentWithHints
from edgekd.train.models import build_model

REPO = Path(__file__).resolve().parents[3]


def test_fashion_mnist_config_hints_resolve_to_real_layers():
    cfg = load_config(REPO / "configs" / "fashion_mnist.yaml")
    shape = (1, 28, 28)
    teachers = [build_model(t, shape, 10) for t in cfg.teachers]
    student = build_model(cfg.student, shape, 10)
    module = StudentWithHints(student, cfg.distill.hints, teachers, torch.zeros(2, *shape))
    assert module(torch.zeros(2, *shape)).shape == (2, 10)
    assert module.adapted[0].shape[1] == 64  # adapted to the teacher's channels (convnet w32, second stage)


def test_benchmark_recipe_keeps_the_student_under_a_tenth_of_the_ensemble():
    cfg = load_config(REPO / "benchmarks" / "distill_fashion_mnist.yaml")
    shape = (1, 28, 28)
    count = lambda spec: sum(p.numel() for p in build_model(spec, shape, 10).parameters())  # noqa: E731
    assert 10 * count(cfg.student) <= sum(count(t) for t in cfg.teachers)
