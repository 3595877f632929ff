"""--only on a run folder: what it needs is checked before anything runs."""
from __future__ import annotations

import json

import pytest

from edgekd import api
from edgekd.core.errors import StageError


def test_only_on_a_partial_run_names_every_missing_stage_at_once(tiny_config, write_config, tmp_path):
    """Trial defect (session 13): `run --only bench --resume` on a folder with only the teachers done said "needs
    'distill' first; ... add --only distill", and following that trained distill, then stopped at "needs 'export'
    first", one stage at a time."""
    run = tmp_path / "run"
    run.mkdir()
    manifest = {"schema": 1, "stages": {"teachers": {"status": "done", "key": "k", "outputs": [], "metrics": {}},
                                        "quantize": {"status": "failed", "reason": "interrupted"}}}
    (run / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    before = (run / "manifest.json").read_text(encoding="utf-8")
    with pytest.raises(StageError, match=rf"--only bench: {run} has not done 'distill', 'export', 'quantize', 'compile', "
                                         r"which 'bench' needs first; run with --resume and without --only \(the stages "
                                         r"done are skipped\), or add --only distill --only export --only quantize "
                                         r"--only compile$"):
        api.run(write_config(tiny_config), out=run, only=["bench"], resume=True)
    assert (run / "manifest.json").read_text(encoding="utf-8") == before  # refused before anything ran
    with pytest.raises(StageError, match=r"--only bench: .* has not done 'export', 'quantize', 'compile', which 'bench'"):
        api.run(write_config(tiny_config), out=run, only=["distill", "bench"], resume=True)
