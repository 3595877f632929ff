"""The distillation objective the trainer calls per batch: KD on ensemble soft targets, plus hints,
plus (optionally) cross-entropy on labels; alpha 0 without hints is plain cross-entropy (scratch)."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from edgekd.train.config import DistillConfig
from edgekd.train.distill.augment import EpochDraws, ShiftFlip
from edgekd.train.distill.ensemble import EnsembleTargets
from edgekd.train.distill.hints import StudentWithHints, TeacherFeatures
from edgekd.train.distill.losses import dkd_loss, hint_loss, kd_loss


class DistillObjective:
    def __init__(self, cfg: DistillConfig, x: torch.Tensor, targets: Optional[EnsembleTargets] = None,
                 augment: Optional[ShiftFlip] = None, student: Optional[StudentWithHints] = None,
                 features: Optional[TeacherFeatures] = None):
        self.cfg, self.x, self.targets, self.augment = cfg, x, targets, augment
        self.student, self.features = student, features
        self._draws: dict[int, EpochDraws] = {}
        self._soft: Optional[torch.Tensor] = None
        self._batch: Optional[torch.Tensor] = None

    def on_epoch(self, epoch: int) -> None:
        # Without augmentation every epoch has the same soft targets: combine the cached logits once.
        reuse = self._soft is not None and self.targets is not None and self.targets.mode == "cache"
        if self.targets is not None and not reuse:
            self._soft = self.targets.soft_targets(epoch, self.x.device)

    def inputs(self, idx: torch.Tensor, epoch: int) -> torch.Tensor:
        """The batch for these indices at this epoch: augmented with the epoch's replayable draws if configured."""
        if self.augment is None:
            batch = self.x[idx]
        else:
            if epoch not in self._draws:
                self._draws = {epoch: self.augment.draws(epoch).to(self.x.device)}  # one epoch's draws, beside the data
            batch = self.augment.apply(self.x, self._draws[epoch], idx)
        self._batch = batch
        return batch

    def __call__(self, logits: torch.Tensor, idx: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        labels = labels if self.cfg.use_labels else None
        teacher_features, teacher_logits = ([], {})
        if self.features is not None:
            teacher_features, teacher_logits = self.features(self._device_batch(logits))
        if self.targets is None:
            loss = F.cross_entropy(logits.float(), labels)
        else:
            soft = self._soft[idx.to(self._soft.device)] if self._soft is not None else \
                self.targets.live(self._device_batch(logits), teacher_logits)
            loss = self._soft_loss(logits, soft, labels)
        for hint, adapted, feature in zip(self.cfg.hints, self.student.adapted if self.student else [], teacher_features):
            loss = loss + hint.weight * hint_loss(adapted, feature)
        return loss

    def _soft_loss(self, logits: torch.Tensor, soft: torch.Tensor, labels: Optional[torch.Tensor]) -> torch.Tensor:
        cfg = self.cfg
        if cfg.dkd is not None:  # the config refuses dkd without labels
            return dkd_loss(logits, soft, labels, cfg.temperature, cfg.dkd.target_weight, cfg.dkd.nontarget_weight)
        return kd_loss(logits, soft, labels, cfg.temperature, cfg.alpha, cfg.logit_standardize)

    def _device_batch(self, logits: torch.Tensor) -> torch.Tensor:
        return self._batch.to(logits.device)
