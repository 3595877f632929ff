from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from edgekd.lm.training import sequence_steps  # noqa: E402


@pytest.mark.parametrize("share, expected", [(0.0, "...."), (1.0, "ssss"), (0.5, ".s.s.s"), (1 / 3, "..s..s"), (0.75, ".sss.sss")])
def test_sequence_steps_spread_the_share_evenly(share, expected):
    plan = sequence_steps(len(expected), share)
    assert plan.dtype == bool and "".join("s" if on else "." for on in plan) == expected


def test_sequence_steps_keep_the_share_over_a_long_run():
    assert sequence_steps(1000, 0.3).sum() == 300 and sequence_steps(999, 0.5).sum() == 499
    assert np.array_equal(sequence_steps(10, 0.5), sequence_steps(20, 0.5)[:10])
