"""bench.eval_samples against a test split smaller than it: said only when the user asked for that many."""
from __future__ import annotations

import json

import pytest
import yaml

from edgekd import api
from tests.faults.helpers import TINY, merged

SHORT = "fewer than bench.eval_samples"


@pytest.mark.slow
def test_a_short_test_split_is_said_only_for_an_eval_samples_the_user_set(tmp_path):
    """Trial defect (session 14): runs that never set bench.eval_samples (`edgekd ship`, an `edgekd init` file) warned
    "evaluation set: 36 samples, fewer than bench.eval_samples 500" at the bench stage: the default is no request. The
    runner's early warning already checked model_fields_set; the bench stage now does too, and report.json still says
    how many samples it measured. Set by the user, it is still said."""
    unset = merged(TINY, {"bench": {"eval_samples": None}, "data": {"test_limit": 30}})
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(unset), encoding="utf-8")
    run = tmp_path / "run"
    with pytest.warns() as said:
        api.run(config, out=run, log=lambda _m: None)
    report = json.loads((run / "report.json").read_text())
    assert not any(SHORT in str(w.message) for w in said) and not any(SHORT in w for w in report["warnings"])
    assert report["eval_set"]["samples"] == 30

    config.write_text(yaml.safe_dump(merged(unset, {"bench": {"eval_samples": 50}})), encoding="utf-8")
    with pytest.warns(UserWarning, match="evaluation set: 30 samples, fewer than bench.eval_samples 50"):
        api.run(config, out=run, resume=True, log=lambda _m: None)
    assert any(SHORT in w for w in json.loads((run / "report.json").read_text())["warnings"])
