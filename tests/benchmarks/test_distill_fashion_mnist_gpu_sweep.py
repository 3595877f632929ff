"""benchmarks/distill_fashion_mnist_gpu_sweep.py's summary: the KD - scratch margin pairs runs of the same seed only
(a run cut short by the device's time limit leaves some seeds of one mode missing), and variants never run show '-'."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def sweep(load_benchmark):
    return load_benchmark("distill_fashion_mnist_gpu_sweep")


def _row(name, mode, seed, val, test):
    return {"name": name, "mode": mode, "seed": seed, "val": val, "test": test, "params": 10516, "ensemble": 0.93}


def test_margin_pairs_only_seeds_both_modes_finished(sweep, tmp_path):
    lines = tmp_path / "sweep.jsonl"
    rows = [_row("w6", "scratch", 0, 0.90, 0.89), _row("w6", "scratch", 1, 0.92, 0.91), _row("w6", "scratch", 2, 0.50, 0.50),
            _row("w6", "kd", 0, 0.91, 0.90), _row("w6", "kd", 1, 0.93, 0.93)]
    lines.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = sweep.summarize(lines, planned=len(sweep.tasks()))
    w6 = next(v for v in summary["variants"] if v["name"] == "w6")
    assert w6["scratch"]["seeds"] == [0, 1, 2] and w6["scratch"]["test"] == pytest.approx(0.7667, abs=1e-4)
    assert w6["kd_minus_scratch"]["seeds"] == [0, 1]  # seed 2 has no KD run: left out of the margin
    assert w6["kd_minus_scratch"]["test"] == pytest.approx(0.015)
    assert summary["runs"] == 5 and summary["planned_runs"] == len(sweep.tasks())
    table = sweep.markdown(summary, "Machine: test")
    assert "| w6 | 10516 | 77.33% / 76.67% (0,1,2) | 92.00% / 91.50% (0,1) | +1.00 / +1.50 (0,1) |" in table
    assert "| w8 | - | - | - | - |" in table


def test_every_planned_variant_is_in_the_grid_with_known_modes(sweep):
    planned = sweep.tasks()
    assert {name for name, _, _ in planned} == set(sweep.GRID)
    assert {mode for _, mode, _ in planned} == {"scratch", "kd"}
    assert len(planned) == 3 * sum(len(modes) for _, _, modes in sweep.GRID.values())


def test_a_stopped_sweep_resumes_with_the_runs_that_have_no_line(sweep, tmp_path):
    lines = tmp_path / "sweep.jsonl"
    planned = sweep.tasks()
    assert sweep.not_finished(planned, lines) == planned  # no file yet: everything to do
    lines.write_text(json.dumps(_row("w6", "kd", 0, 0.9, 0.9)) + "\n" + json.dumps(_row("w8", "scratch", 2, 0.9, 0.9)) + "\n")
    todo = sweep.not_finished(planned, lines)
    assert len(todo) == len(planned) - 2
    assert ("w6", "kd", 0) not in todo and ("w8", "scratch", 2) not in todo and ("w6", "scratch", 0) in todo
