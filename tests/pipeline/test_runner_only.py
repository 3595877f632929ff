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


def test_a_stage_failing_after_finished_ones_says_how_to_continue_and_a_resume_stopped_by_its_checks_is_logged(tmp_path):
    """Trial defect (session 14): a run whose distill stage failed (distill.cache_dir under a regular file) after its
    teachers stage finished ended "edgekd: error: ...: cannot write (Not a directory); pick a writable location", and
    its log "stopped: OutputError: ...", with no "edgekd run ... --resume" line (an interrupt gives one), so users
    started over. And a --resume refused by the input checks (NaN put into the npz after the teachers stage) left the
    run's log with no header and no error for that attempt. The error now ends with the command that continues, and
    the refused attempt is logged, without making a run folder where none was."""
    import numpy as np

    from edgekd.core.errors import DataError, OutputError
    from tests.faults.helpers import TINY, merged

    x = np.random.default_rng(0).integers(0, 256, (240, 1, 8, 8)).astype(np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(240) % 4)
    (tmp_path / "notadir").write_text("a file\n")
    config = tmp_path / "n.yaml"
    config.write_text(json.dumps(merged(TINY, {"data": {"source": "npz", "path": "d.npz", "train_limit": None,
                                                        "test_limit": None},
                                               "distill": {"cache_dir": "notadir/sub"}, "bench": {"eval_samples": 40}})))
    run = tmp_path / "run"
    api.run(config, out=run, only=["teachers"])
    how = f"continue with: edgekd run {config} --out {run} --resume"
    with pytest.raises(OutputError, match=r"cannot write .*; finished stages are kept: once that is fixed, " + how):
        api.run(config, out=run, resume=True)
    assert (run / "edgekd.log").read_text().splitlines()[-1].endswith(how)

    x = x.astype(np.float32)
    x[0, 0, 0, 0] = np.nan
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(240) % 4)
    with pytest.raises(DataError, match="NaN"):
        api.run(config, out=run, resume=True)
    attempt = (run / "edgekd.log").read_text().split("\n=== ")[-1].splitlines()
    assert attempt[0].endswith(f"edgekd run {config} --out {run} --resume")
    assert "stopped: DataError: " in attempt[-1] and "NaN" in attempt[-1]
    with pytest.raises(DataError, match="NaN"):
        api.run(config, out=tmp_path / "new")
    assert not (tmp_path / "new").exists()
