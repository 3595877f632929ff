"""Token-level distillation losses for causal language models, against the teacher's cached top-k logits.

Every position t of a block carries the teacher's distribution over token t + 1, known only on its k largest
logits (cache.py). Two ways to compare the student with it:

* tail bucket (the default, when the cache has the teacher's full-vocabulary log-sum-exp): both distributions
  are coarsened to k + 1 outcomes, the teacher's k tokens and "anything else", and compared exactly there.
  The teacher's probabilities are then its true ones (not inflated by renormalising), the student is told how
  much mass belongs outside the top k, and by the data-processing inequality the loss is a lower bound of the
  full-vocabulary KL that equals it when the teacher's mass is all in its top k. Cost: one float per token.
* renormalised top-k: the teacher's k logits softmaxed among themselves; the student's log-probabilities are
  its full-vocabulary ones at those k tokens. Needs no log-sum-exp, but over-states the teacher's confidence
  at high temperature, where much of its mass is in the tail.

Forward KL(p || q) is Hinton-style distillation (mass-covering); reverse KL(q || p) is the mode-seeking
objective MiniLLM argues for generative students, here in its token-level form (MiniLLM itself optimises the
sequence-level reverse KL with policy gradients over student samples; that is not implemented). Both are
scaled by T^2 so that their gradients keep their size as the temperature changes (Hinton et al. 2015).

Sequence-level KD (Kim & Rush 2016), training on the teacher's own continuations rather than its distributions,
needs no teacher logits at all: continuation_cross_entropy on the sequences of sequences.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

TINY = 1e-8  # floor for the probabilities whose log a loss takes: a zero tail would make reverse KL infinite


@dataclass(frozen=True)
class TopKTargets:
    values: torch.Tensor                 # (B, T, k) teacher logits at temperature 1
    indices: torch.Tensor                # (B, T, k) int64 token ids
    logsumexp: Optional[torch.Tensor]    # (B, T) log sum_v exp(z_v / T) over the full vocabulary, or None


def lm_cross_entropy(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy: position t predicts ids[t + 1] (the last position has no label)."""
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1))


def continuation_cross_entropy(logits: torch.Tensor, ids: torch.Tensor, prompt_tokens: int) -> torch.Tensor:
    """Next-token cross-entropy on the continuation only (sequence-level KD, Kim & Rush 2016): ids holds a prompt
    of `prompt_tokens` corpus tokens, then the teacher's continuation. The student learns to produce the teacher's
    tokens given the prompt; the prompt's own tokens are context, not targets (the corpus is the token-level
    loss's business)."""
    if not 1 <= prompt_tokens < ids.shape[1]:
        raise ValueError(f"prompt_tokens {prompt_tokens} leaves no continuation in sequences of {ids.shape[1]} tokens")
    predicting = logits[:, prompt_tokens - 1:-1]  # position t predicts token t + 1: the first is the last prompt token
    return F.cross_entropy(predicting.reshape(-1, logits.shape[-1]).float(), ids[:, prompt_tokens:].reshape(-1))


def forward_kl(student_logits: torch.Tensor, targets: TopKTargets, temperature: float, tail: bool = True) -> torch.Tensor:
    """T^2 * KL(teacher || student) per token, averaged over tokens."""
    log_p, log_q = _bucket_log_probs(student_logits, targets, temperature, tail)
    p = log_p.exp()
    return temperature ** 2 * (p * (log_p - log_q)).sum(-1).mean()


def reverse_kl(student_logits: torch.Tensor, targets: TopKTargets, temperature: float, tail: bool = True) -> torch.Tensor:
    """T^2 * KL(student || teacher) per token (token-level MiniLLM objective), averaged over tokens.

    Without the tail bucket, the student is renormalised over the teacher's top k as well: outside it the
    teacher's probability is unknown, and reverse KL against an unknown (zero) probability is infinite."""
    log_p, log_q = _bucket_log_probs(student_logits, targets, temperature, tail)
    if not tail:
        log_q = log_q - torch.logsumexp(log_q, dim=-1, keepdim=True)
    q = log_q.exp()
    return temperature ** 2 * (q * (log_q - log_p)).sum(-1).mean()


def distill_loss(student_logits: torch.Tensor, ids: torch.Tensor, targets: TopKTargets, temperature: float,
                 alpha: float, direction: str = "forward", tail: bool = True) -> tuple[torch.Tensor, dict[str, float]]:
    """alpha * KD + (1 - alpha) * next-token cross-entropy; with the parts as floats for logging."""
    if direction not in ("forward", "reverse"):
        raise ValueError(f"unknown KL direction {direction!r}; use 'forward' or 'reverse'")
    divergence = (forward_kl if direction == "forward" else reverse_kl)(student_logits, targets, temperature, tail)
    total = alpha * divergence
    parts = {"kd": float(divergence.detach())}
    if alpha < 1.0:
        ce = lm_cross_entropy(student_logits, ids)
        total = total + (1.0 - alpha) * ce
        parts["ce"] = float(ce.detach())
    return total, parts


def _bucket_log_probs(student_logits: torch.Tensor, targets: TopKTargets, temperature: float, tail: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """log p and log q over the compared outcomes: the k teacher tokens, plus the tail bucket when `tail`."""
    log_q_all = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_q = log_q_all.gather(-1, targets.indices)
    scaled = targets.values.float() / temperature
    if not tail:
        return F.log_softmax(scaled, dim=-1), log_q
    if targets.logsumexp is None:
        raise ValueError("the tail bucket needs the teacher's full-vocabulary log-sum-exp; fill the cache with it or use tail=False")
    log_p = scaled - targets.logsumexp.float().unsqueeze(-1)
    return _with_tail(log_p), _with_tail(log_q)


def _with_tail(log_top: torch.Tensor) -> torch.Tensor:
    """Append log(1 - sum of the top-k probabilities), floored at TINY (float16 cache rounding can push the sum past 1)."""
    top_mass = log_top.exp().sum(-1, keepdim=True)
    return torch.cat([log_top, torch.log((1.0 - top_mass).clamp_min(TINY))], dim=-1)
