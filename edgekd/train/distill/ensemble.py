"""Where the ensemble's soft targets come from each epoch: the teacher-logit cache, or live teachers.

- no augmentation: one cache entry per teacher, reused by every epoch (and every later run);
- augmentation, teachers "replay": one entry per teacher and epoch, computed on that epoch's replayed draws;
- augmentation, teachers "live": the teachers run on each augmented batch; nothing is cached.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Optional

import numpy as np
import torch
from torch import nn

from edgekd.core.progress import progress
from edgekd.train import distributed
from edgekd.train.config import DistillConfig
from edgekd.train.distill.augment import ShiftFlip
from edgekd.train.distill.cache import CacheEntry, TeacherLogitCache, cache_key, weights_digest
from edgekd.train.distill.losses import ensemble_soft_targets
from edgekd.train.trainer import predict_logits


class EnsembleTargets:
    def __init__(self, teachers: Sequence[nn.Module], weights: Sequence[float], cfg: DistillConfig, x: torch.Tensor,
                 dataset_id: str, cache: TeacherLogitCache, augment: Optional[ShiftFlip], epochs: int,
                 precision: Optional[torch.dtype]):
        self.teachers, self.weights, self.cfg, self.x = list(teachers), list(weights), cfg, x
        self.dataset_id, self.cache, self.augment, self.epochs, self.precision = dataset_id, cache, augment, epochs, precision
        self.mode = "cache" if augment is None else ("replay" if augment.cfg.teachers == "replay" else "live")
        self.entries: dict[int, list[CacheEntry]] = {}  # epoch (or 0 without augmentation) -> one entry per teacher

    def prepare(self) -> dict:
        """Fill or find every cache entry training will need (rank 0 first under DDP); report hits and misses."""
        if self.mode == "live":
            return {"mode": "live", "reason": "distill.augment.teachers is 'live': teachers run on every batch"}
        started = time.perf_counter()
        digests = [weights_digest(t) for t in self.teachers]
        epochs = self.epochs if self.mode == "replay" else 1
        with distributed.main_first():
            bar = progress(total=epochs * len(digests), desc="teacher-output cache", unit="entry",
                           disable=None if distributed.is_main() else True)
            for epoch in range(epochs):
                self.entries[epoch] = []
                for i, digest in enumerate(digests):
                    self.entries[epoch].append(self._entry(i, digest, epoch))
                    bar.update(1)
            bar.close()
        return self._report(time.perf_counter() - started)

    def _transform(self, epoch: int) -> dict:
        precision = str(self.precision).replace("torch.", "") if self.precision else "fp32"
        return {"augment": self.augment.describe(epoch) if self.augment else None, "precision": precision}

    def _entry(self, index: int, digest: str, epoch: int) -> CacheEntry:
        transform = self._transform(epoch)
        key = cache_key(digest, self.dataset_id, transform)
        describe = {"teacher": f"teachers[{index}]", "weights_sha256": digest, "dataset": self.dataset_id, "transform": transform}
        return self.cache.get_or_compute(key, lambda: self._forward(self.teachers[index], epoch), describe)

    def _forward(self, teacher: nn.Module, epoch: int) -> np.ndarray:
        if self.augment is None:
            return predict_logits(teacher, self.x, autocast=self.precision)
        draws, outputs = self.augment.draws(epoch), []
        for start in range(0, len(self.x), 4096):
            idx = torch.arange(start, min(start + 4096, len(self.x)), device=self.x.device)
            outputs.append(predict_logits(teacher, self.augment.apply(self.x, draws, idx), autocast=self.precision))
        return np.concatenate(outputs)

    def soft_targets(self, epoch: int, device: torch.device) -> Optional[torch.Tensor]:
        """(N, classes) ensemble distribution for this epoch from the cache; None when teachers run live."""
        if self.mode == "live":
            return None
        entries = self.entries[epoch if self.mode == "replay" else 0]
        logits = [torch.from_numpy(np.asarray(e.logits, dtype=np.float32)) for e in entries]
        return self._soft(logits).to(device)

    @torch.no_grad()
    def live(self, batch: torch.Tensor, known: Optional[dict[int, torch.Tensor]] = None) -> torch.Tensor:
        """Soft targets of one batch from live teachers (reusing logits already computed for hints)."""
        known = known or {}
        logits = [known[i] if i in known else t(batch) for i, t in enumerate(self.teachers)]
        return self._soft(logits)

    def _soft(self, logits: Sequence[torch.Tensor]) -> torch.Tensor:
        return ensemble_soft_targets(logits, self.cfg.temperature, self.weights, self.cfg.ensemble, self.cfg.logit_standardize)

    def _report(self, seconds: float) -> dict:
        flat = [e for entries in self.entries.values() for e in entries]
        uses = self.epochs if self.mode == "cache" else 1  # how many epochs each entry serves
        computed = sum(e.compute_seconds for e in flat if not e.hit)
        # Without the cache every epoch would run every teacher over the transfer set once.
        saved = sum(e.compute_seconds * uses for e in flat) - computed
        return {"mode": self.mode, "dir": str(self.cache.root), "entries": len(flat),
                "hits": sum(e.hit for e in flat), "misses": sum(not e.hit for e in flat),
                "keys": [e.key[:16] for e in flat][:12], "seconds": round(seconds, 2),
                "teacher_forward_seconds_computed": round(computed, 2),
                "teacher_forward_seconds_saved": round(saved, 2),
                "images_per_second": round(len(self.x) * sum(not e.hit for e in flat) / computed, 1) if computed else None}
