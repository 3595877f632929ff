"""Training, export and int8 joining of the table student (edgekd/tabular/student.py), as the tabular stages and the
benchmark call them."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgekd.core.errors import StageError
from edgekd.core.fileio import atomic_path
from edgekd.tabular import student as st

PREPROCESSING_FILE = "preprocessing.onnx"
NETWORK_FILE = "network.onnx"
FRONT_ATOL = 1e-4  # the converted preprocessing against scikit-learn's (float32 arithmetic on both sides)


def soft_targets(train_logits: list[np.ndarray], teachers, cfg) -> torch.Tensor:
    """The ensemble's temperature-softened distribution on the training rows (distill.ensemble, teachers' weights)."""
    from edgekd.train.distill.losses import ensemble_soft_targets

    return ensemble_soft_targets([torch.from_numpy(z) for z in train_logits], cfg.temperature, [t.weight for t in teachers],
                                 cfg.ensemble)


def kd_objective(soft: torch.Tensor | None, cfg):
    """Hinton's loss on the cached soft targets of the batch's rows; labels alone without them (the scratch baseline).
    Rows labelled -1 (the transfer set's synthetic rows) have the teachers' soft targets only: the soft term alone."""
    from edgekd.train.distill.losses import kd_loss
    from edgekd.train.trainer import cross_entropy_loss

    if soft is None:
        return cross_entropy_loss()

    def loss(logits, idx, labels):
        targets = soft[idx.cpu()].to(logits.device)
        real = labels >= 0
        if bool(real.all()):
            return kd_loss(logits, targets, labels, cfg.temperature, cfg.alpha)
        total = kd_loss(logits[~real], targets[~real], None, cfg.temperature, cfg.alpha) * (~real).sum()
        if bool(real.any()):
            total = total + kd_loss(logits[real], targets[real], labels[real], cfg.temperature, cfg.alpha) * real.sum()
        return total / len(labels)

    return loss


def train_student(data, student_cfg, distill_cfg, soft: torch.Tensor | None, seed: int, log_desc: str = "",
                  transfer: dict[str, np.ndarray] | None = None, checkpoint: Path | None = None) -> tuple[st.TrainedStudent, dict]:
    """Preprocessing fitted on the training rows, then the network trained on its features; metrics on val and test.
    transfer: synthetic rows (distill.transfer_set) appended to the training rows, without labels; `soft` then holds
    the ensemble's targets for the training rows followed by theirs. `checkpoint`: the per-epoch progress file that
    `edgekd run --resume` continues from (train/trainer.train)."""
    from edgekd.train.trainer import predict_logits, train

    front = st.fit_preprocessing(data.schema, data.train.x)
    x, y = st.features(front, data.train.x), data.train.y
    if transfer is not None and soft is not None:
        x = np.concatenate([x, st.features(front, transfer)])
        y = np.concatenate([y, np.full(len(x) - len(y), -1, dtype=y.dtype)])
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    torch.manual_seed(seed)
    network = st.build_network(student_cfg.arch, student_cfg.width, student_cfg.kwargs, x.shape[1], data.num_classes)
    phase = "distill" if soft is not None else "scratch"
    result = train(network, x, y, distill_cfg.train, kd_objective(soft, distill_cfg), seed=seed, desc=log_desc or phase,
                   checkpoint=checkpoint)
    network = network.eval()
    score = lambda split: float((predict_logits(network, st.features(front, split.x)).argmax(1) == split.y).mean())  # noqa: E731
    metrics = {"params": st.parameters(network), "features": int(x.shape[1]), "arch": student_cfg.arch,
               "width": student_cfg.width, "depth": int(student_cfg.kwargs.get("depth", 2)),
               "loss": {"kind": "hinton" if soft is not None else "cross_entropy", "temperature": distill_cfg.temperature,
                        "alpha": distill_cfg.alpha if soft is not None else 0.0},
               "rows": {"train": len(data.train), "transfer": int(len(y) - len(data.train))},
               "phases": {phase: result.summary()}, "val_top1": score(data.val), "test_top1": score(data.test)}
    return st.TrainedStudent(network, front), metrics


def save_preprocessing(front, data, path: Path) -> Path:
    """The fitted preprocessing as ONNX in the data's input layout (tabular/front.py), checked against scikit-learn on
    validation rows before it is kept."""
    import onnx

    from edgekd.tabular.front import front_graph, plan_of
    from edgekd.tabular.runtime import run_onnx

    model = front_graph(plan_of(front, data.schema), data.schema)
    got = run_onnx(model.SerializeToString(), data.model_x(data.val.x))
    want = st.features(front, data.val.x)
    if got.shape != want.shape or not np.allclose(got, want, atol=FRONT_ATOL):
        raise StageError(f"distill: the preprocessing written as ONNX differs from scikit-learn's (max error "
                         f"{np.abs(got - want).max() if got.shape == want.shape else got.shape}); report this with the data's schema")
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))
    return path


def _network(ctx):
    from edgekd.train.models import load_checkpoint

    metrics = ctx.manifest.metrics("distill")
    network = st.build_network(ctx.cfg.student.arch, ctx.cfg.student.width, ctx.cfg.student.kwargs, metrics["features"],
                               ctx.dataset.num_classes)
    return load_checkpoint(network, ctx.stage_dir("distill") / "student.pt", "student").eval()


def join_front(ctx, network_onnx: Path, out: Path, folded: bool = False) -> Path:
    """The preprocessing graph in front of `network_onnx`; `folded`: a network whose first layer takes the one-hot
    slots unpicked (front.folded_network), behind the same preprocessing without its slot selection."""
    import onnx

    from edgekd.tabular.front import front_graph, plan_from_graph

    front = onnx.load(str(ctx.stage_dir("distill") / PREPROCESSING_FILE))
    if folded:
        front = front_graph(plan_from_graph(front, ctx.dataset.schema), ctx.dataset.schema, pick=False)
    with atomic_path(out) as tmp:
        st.join(front, network_onnx, Path(tmp))
    return out


@dataclass
class Int8Source:
    """The network part an int8 model quantizes. Where export folded the one-hot slot selection into the first layer
    (fold_front), the same folded network: the int8 model is then a quantized copy of the shipped fp32 graph, with its
    weights and parameter count (quantizing the unfolded network gave one student two counts, 2,437 in fp32 and
    1,957 in int8). The folded first layer's extra inputs are one-hot slots that are always zero: its activation range,
    and with per-channel weights its weight scales, are those of the unfolded layer."""
    path: Path
    plan: Any = None  # folded: the FrontPlan whose unpicked features the network takes

    @property
    def folded(self) -> bool:
        return self.plan is not None

    def inputs(self, features: np.ndarray) -> np.ndarray:
        """The network's input from scikit-learn's features (front_features)."""
        from edgekd.tabular.front import unpicked_features

        return features if self.plan is None else unpicked_features(self.plan, features)


def int8_source(ctx, network_onnx: Path, folded_out: Path) -> Int8Source:
    """The network to quantize: folded (written to `folded_out`) where fold_front folds it, else `network_onnx`."""
    import onnx

    from edgekd.tabular.front import folded_network, plan_from_graph

    plan = plan_from_graph(onnx.load(str(ctx.stage_dir("distill") / PREPROCESSING_FILE)), ctx.dataset.schema)
    model = folded_network(plan, onnx.load(str(network_onnx))) if plan.categorical else None
    if model is None:  # no category columns (nothing folded), or a first layer export does not fold either
        return Int8Source(network_onnx)
    with atomic_path(folded_out) as tmp:
        onnx.save(model, str(tmp))
    return Int8Source(folded_out, plan)


def fold_front(ctx, network_onnx: Path, out: Path) -> bool:
    """The fp32 student with standardization and one-hot slots folded into its first layer (tabular/front.py): fewer
    nodes at batch 1. False (nothing written) when the network's first node is not a plain Gemm."""
    import onnx

    from edgekd.tabular.front import folded_graph, plan_from_graph

    schema = ctx.dataset.schema
    plan = plan_from_graph(onnx.load(str(ctx.stage_dir("distill") / PREPROCESSING_FILE)), schema)
    model = folded_graph(plan, schema, onnx.load(str(network_onnx)))
    if model is None:
        return False
    with atomic_path(out) as tmp:
        onnx.save(model, str(tmp))
    return True


def export(ctx, network_path: Path, out: Path) -> dict[str, Any]:
    """The network as ONNX, its first layer folded with the preprocessing (else joined behind it); parity against
    PyTorch on validation rows."""
    from edgekd.core.metrics import fidelity
    from edgekd.tabular.runtime import run_onnx

    network = _network(ctx)
    inputs = ctx.manifest.metrics("distill")["features"]
    with atomic_path(network_path) as tmp:
        st.export_network(network, inputs, Path(tmp), ctx.cfg.export.opset)
    if not fold_front(ctx, network_path, out):
        join_front(ctx, network_path, out)
    rows = ctx.dataset.model_x({name: array[:ctx.cfg.export.parity_samples] for name, array in ctx.dataset.val.x.items()})
    front = run_onnx(str(ctx.stage_dir("distill") / PREPROCESSING_FILE), rows)
    with torch.no_grad():
        expected = network(torch.from_numpy(front)).numpy()
    return {k: v for k, v in fidelity(run_onnx(str(out), rows), expected).items() if k in ("max_abs_error", "top1_agreement")}


def front_features(ctx, rows: dict[str, np.ndarray]) -> np.ndarray:
    """Raw rows through the run's preprocessing graph: the network's input."""
    from edgekd.tabular.runtime import run_onnx

    return run_onnx(str(ctx.stage_dir("distill") / PREPROCESSING_FILE), ctx.dataset.model_x(rows))


def calibration_features(ctx, recipe) -> np.ndarray:
    """quantize.calibration's count of rows (drawn with its seed) from its split, as the network's features."""
    split = getattr(ctx.dataset, recipe.source)
    rows = np.sort(np.random.default_rng(recipe.seed).permutation(len(split))[:recipe.count])
    return front_features(ctx, {k: v[rows] for k, v in split.x.items()})
