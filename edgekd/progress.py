"""Progress bars for long work: shown in a terminal, kept out of logs, pipes and CI output."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

from tqdm.auto import tqdm


def progress(iterable: Optional[Iterable] = None, **kwargs: Any) -> tqdm:
    kwargs.setdefault("leave", False)
    kwargs.setdefault("mininterval", 0.5)
    kwargs.setdefault("disable", None)  # None: tqdm turns itself off when stderr is not a terminal
    return tqdm(iterable, **kwargs)
