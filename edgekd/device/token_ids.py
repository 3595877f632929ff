"""Token ids against the model's vocabulary, before any runtime sees them: one check for a language model's
held-out blocks and prompts (device/lm_bench.py) and a text classifier's texts
(device/bench.py --texts). An id past the embedding table is no error to numpy, and onnxruntime's Gather (or
BERT's fused EmbedLayerNormalization) then fails mid-run with 'input index out of range', naming no file."""
from __future__ import annotations

from typing import Any

import numpy as np

from edgekd.core.errors import ArtifactError


def check_token_ids(ids: np.ndarray, vocab_size: Any, where: str, why: str = "", fix: str = "rebuild the bundle") -> None:
    """ArtifactError naming `where` when an id falls outside 0..vocab_size-1; nothing to check when the size is
    not recorded (a bundle made before it was) or there are no ids. `why` says what made the ids."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size <= 0 or ids.size == 0:
        return
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= vocab_size:
        found = f"{low}..{high}" if low < 0 else f"up to {high}"
        raise ArtifactError(f"{where}: token ids outside 0..{vocab_size - 1} (the model's vocabulary; found {found})"
                            f"{why}; {fix}")
