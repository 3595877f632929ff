"""Online distillation: deep mutual learning (Zhang et al. 2018).

Peers train together; each minimises cross-entropy on labels plus the KL divergence from every other
peer's softened prediction (detached, so each term only moves its own peer).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def mutual_losses(peer_logits: Sequence[torch.Tensor], labels: torch.Tensor, temperature: float = 1.0) -> list[torch.Tensor]:
    """Per-peer loss: CE(z_k, y) + T^2 * mean_{j != k} KL(softmax(z_j / T) || softmax(z_k / T))."""
    losses = []
    for k, logits in enumerate(peer_logits):
        log_p_k = F.log_softmax(logits.float() / temperature, dim=-1)
        kls = [F.kl_div(log_p_k, F.softmax(other.detach().float() / temperature, dim=-1), reduction="batchmean")
               for j, other in enumerate(peer_logits) if j != k]
        mimicry = torch.stack(kls).mean() * temperature**2 if kls else logits.new_zeros(())
        losses.append(F.cross_entropy(logits.float(), labels) + mimicry)
    return losses


class PeerGroup(nn.Module):
    """Several peers as one module so the shared training loop can train them together.

    Summing the per-peer losses gives each peer exactly its own DML gradient, because the other
    peers' predictions enter its loss detached.
    """

    def __init__(self, peers: Sequence[nn.Module]):
        super().__init__()
        self.peers = nn.ModuleList(peers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([peer(x) for peer in self.peers])


def mutual_loss_fn(temperature: float = 1.0):
    def loss(stacked_logits: torch.Tensor, _idx, labels: torch.Tensor) -> torch.Tensor:
        return torch.stack(mutual_losses(list(stacked_logits), labels, temperature)).sum()

    return loss
