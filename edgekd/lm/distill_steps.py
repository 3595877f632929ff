"""What each step of the language-model distill stage trains on, by `distill.mode`:

* token: a batch of corpus blocks, with the teacher's cached top-k logits for them (alpha x KL + (1 - alpha) x CE);
* sequence: a batch of the teacher's own continuations of prompts from the training blocks, next-token
  cross-entropy on the continuation (sequence-level KD, Kim & Rush 2016);
* both: the two kinds of step interleaved evenly, `distill.sequence.share` of them on sequences.

Both caches are filled once, before training, for exactly the steps that will read them, and live in the stage
folder, so a rerun with the same teacher and settings reads them back.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from edgekd.lm.cache import TopKEntry
from edgekd.lm.losses import TopKTargets, continuation_cross_entropy, distill_loss
from edgekd.lm.sequences import Decoding, SequenceEntry, prompts_from_blocks
from edgekd.lm.teacher import cached_sequences, cached_targets
from edgekd.lm.training import sequence_steps


@dataclass
class DistillSteps:
    settings: Any                        # LMDistillConfig
    on_sequences: np.ndarray             # (steps,) bool: the step trains on teacher sequences
    index: np.ndarray                    # (steps,) the step's number among the steps of its kind
    blocks: np.ndarray                   # (token steps x batch, context) the corpus blocks token steps read, in order
    topk: Optional[TopKEntry] = None
    sequences: Optional[SequenceEntry] = None
    sequence_order: Optional[np.ndarray] = None  # rows of `sequences`, shuffled and repeated to the steps that read them
    decoding: Optional[Decoding] = None

    @classmethod
    def prepare(cls, settings, teacher, train: np.ndarray, folder: Path, seed: int) -> DistillSteps:
        """Plan the steps and fill the caches they need (the teacher runs here, once per setting)."""
        batch, steps = settings.train.batch_size, settings.train.steps
        plan = sequence_steps(steps, settings.sequence_share())
        index = np.where(plan, np.cumsum(plan) - 1, np.cumsum(~plan) - 1)
        # The same blocks, in the same order, as before sequence-level KD existed: mode token reuses its caches.
        token_rows = np.resize(np.random.default_rng(seed + 1).permutation(len(train)), int((~plan).sum()) * batch)
        planned = cls(settings, plan, index, np.ascontiguousarray(train[token_rows]))
        if len(planned.blocks):
            planned.topk = cached_targets(teacher, planned.blocks, folder / "topk", settings.top_k, settings.temperature, batch)
        if plan.any():
            planned._prepare_sequences(teacher, train, folder / "sequences", seed)
        return planned

    def _prepare_sequences(self, teacher, train: np.ndarray, folder: Path, seed: int) -> None:
        spec, batch = self.settings.sequence, self.settings.train.batch_size
        prompts = prompts_from_blocks(train, spec.prompts, spec.prompt_tokens, seed + 2)
        self.decoding = Decoding(spec.new_tokens, spec.top_k, spec.temperature, seed, spec.batch_size)
        self.sequences = cached_sequences(teacher, prompts, folder, self.decoding)
        needed = int(self.on_sequences.sum()) * batch
        self.sequence_order = np.resize(np.random.default_rng(seed + 3).permutation(spec.prompts), needed)

    def batch(self, step: int) -> torch.Tensor:
        """The token ids step `step` trains on."""
        size, at = self.settings.train.batch_size, int(self.index[step]) * self.settings.train.batch_size
        if self.on_sequences[step]:
            return torch.from_numpy(self.sequences.batch(self.sequence_order[at:at + size]))
        return torch.from_numpy(self.blocks[at:at + size].astype(np.int64))

    def loss(self, logits: torch.Tensor, ids: torch.Tensor, step: int) -> torch.Tensor:
        if self.on_sequences[step]:
            return continuation_cross_entropy(logits, ids, self.sequences.prompt_tokens)
        size, settings = self.settings.train.batch_size, self.settings
        rows = np.arange(int(self.index[step]) * size, (int(self.index[step]) + 1) * size)
        values, indices, lse = (torch.from_numpy(a) for a in self.topk.batch(rows))
        return distill_loss(logits, ids, TopKTargets(values, indices, lse), settings.temperature, settings.alpha,
                            settings.direction)[0]

    def metrics(self) -> dict:
        """What the steps trained on, for the stage's metrics."""
        settings, out = self.settings, {"mode": self.settings.mode,
                                        "steps": {"token": int((~self.on_sequences).sum()), "sequence": int(self.on_sequences.sum())}}
        if self.topk is not None:
            out["topk_cache"] = {"blocks": len(self.blocks), "k": settings.top_k, "temperature": settings.temperature}
        if self.sequences is not None:
            out["sequence_cache"] = {"prompts": len(self.sequences.tokens), "prompt_tokens": self.sequences.prompt_tokens,
                                     **self.decoding.describe(), "key": self.sequences.folder.name}
        return out
