"""benchmarks/third_party.py's own logic: the pinned files are refused with one line when missing or changed, the
recognizer's labels follow its dictionary, and the issue's targets are judged as stated (no download here; the
script's --smoke run is in test_smoke.py)."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.helpers import tiny_graphs


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("third_party")


def test_a_missing_model_names_the_make_target(bench, tmp_path):
    with pytest.raises(SystemExit) as refused:
        bench.pinned_model(bench.MODELS["cls"], tmp_path)
    message = str(refused.value)
    assert "make third-party-models" in message and "rapidocr-onnxruntime==1.4.4" in message and "\n" not in message


def test_a_file_that_differs_from_its_pin_is_refused_in_one_line(bench, tmp_path):
    model = bench.MODELS["vad"]
    folder = tmp_path / bench.WHEELS["silero"][2]
    folder.mkdir()
    (folder / model.file).write_bytes(b"not the pinned model")
    with pytest.raises(SystemExit) as refused:
        bench.pinned_model(model, tmp_path)
    message = str(refused.value)
    assert "not the pinned" in message and "silero-vad==6.2.3" in message and "\n" not in message


def test_a_file_that_matches_its_pin_is_taken(bench, tmp_path):
    path = tiny_graphs.tiny_cls(tmp_path / "made" / "cls.onnx")
    model = bench.MODELS["cls"]
    pinned = model._replace(sha256=bench.sha256_of(path))
    folder = tmp_path / bench.WHEELS["rapidocr"][2]
    folder.mkdir()
    (folder / model.file).write_bytes(path.read_bytes())
    assert bench.pinned_model(pinned, tmp_path) == folder / model.file


def test_rec_labels_are_the_dictionary_indices_plus_one(bench, tmp_path):
    path = tiny_graphs.tiny_rec(tmp_path / "rec.onnx", classes=12)
    dictionary = bench._rec_dictionary(path)
    data = bench._rec_data(6, 0, path, width=64)
    assert data["x"].shape == (6, 3, 48, 64)
    assert data["y"].max() <= len(dictionary) and (data["y"][data["y"] >= 0] >= 1).all()  # 0 is CTC's blank


def _target(chosen: dict, peers: list[dict], fp32_metric: float = 0.9) -> dict:
    return {"target": "x86-cpu", "chosen": chosen["name"], "fp32": {"task_metric_truth": fp32_metric, "p50_ms": 10.0},
            "candidates": [chosen, *peers]}


def _entry(key: str, target: dict) -> dict:
    return {"key": key, "task_metric": "mask_iou", "max_drop_points": 1.0, "targets": [target]}


def test_checks_judge_the_speedup_the_drop_and_the_peers(bench):
    chosen = {"name": "edgekd-int8", "tool": "edgekd", "precision": "int8", "task_metric_truth": 0.895, "p50_ms": 7.0, "speedup": 1.43}
    fast_but_wrong = {"name": "onnxruntime-default", "tool": "onnxruntime-default", "precision": "int8", "task_metric_truth": 0.80,
                      "p50_ms": 5.0}
    passing = {"name": "nncf-default", "tool": "nncf-default", "precision": "int8", "task_metric_truth": 0.899, "p50_ms": 6.8}
    results = {c["check"]: c["passed"] for c in bench.checks([_entry("det", _target(chosen, [fast_but_wrong, passing]))], 100.0, False)}
    assert results == {"det x86-cpu: ships": True, "det x86-cpu: shipped mask_iou within 1.0 points of fp32": True,
                       "det x86-cpu: int8 at >= 1.3x fp32": True,
                       "det x86-cpu: within 5% of the fastest passing peer": True,  # 7.0 <= 6.8 * 1.05; the 5 ms peer fails the bar
                       "whole benchmark <= 60 minutes": True}
    slow = {**chosen, "p50_ms": 9.0, "speedup": 1.11, "task_metric_truth": 0.88}
    results = {c["check"]: c["passed"] for c in bench.checks([_entry("det", _target(slow, [passing]))], 4000.0, False)}
    assert [name for name, ok in results.items() if not ok] == [
        "det x86-cpu: shipped mask_iou within 1.0 points of fp32", "det x86-cpu: int8 at >= 1.3x fp32",
        "det x86-cpu: within 5% of the fastest passing peer", "whole benchmark <= 60 minutes"]


def test_a_refused_model_fails_ships_with_its_reason(bench):
    refused = {"target": "x86-cpu", "chosen": None, "refused": "vad.npz: 'state' must hold ...", "fp32": None, "candidates": []}
    [ships, _total] = bench.checks([_entry("vad", refused)], 1.0, True)
    assert ships == {"check": "vad x86-cpu: ships", "passed": False, "detail": "vad.npz: 'state' must hold ..."}
    assert not _total["passed"]  # a smoke run's minutes are no measurement


def test_vad_data_is_fed_as_the_model_takes_it(bench, tmp_path):
    path = tiny_graphs.tiny_vad(tmp_path / "vad.onnx")
    data = bench._vad_data(1, 0, path, bench._tone)
    frames = len(data["input"])
    assert data["state"].shape[1] == frames and data["sr"].shape == () and len(data["y"]) == frames
    assert np.isin(data["y"], [0, 1]).all()


def test_a_model_that_crashed_is_written_with_its_last_line(bench):
    crashed = {"model": "cls.onnx", "key": "cls", "task_metric": "top1", "targets": [], "source": {"wheel": "w==1", "sha256": "ab"},
               "crashed": "Traceback (most recent call last):\n  ...\nonnxruntime...Fail: invalid model (Conv@16_bias_dq)\n"}
    data = {"smoke": False, "models": [crashed], "machine": {"model": "cpu", "cores": 2, "flags": ["avx2"]},
            "load_average_before": [1.0], "total_seconds": 60.0, "command": "python benchmarks/third_party.py", "checks": []}
    ships, total = bench.checks([crashed], 60.0, False)
    assert ships == {"check": "cls: ships", "passed": False, "detail": "onnxruntime...Fail: invalid model (Conv@16_bias_dq)"}
    assert not total["passed"]  # the minutes of a run that did not finish are no result
    text = bench.markdown(data)
    assert "**Crashed:** `onnxruntime...Fail: invalid model (Conv@16_bias_dq)`" in text


def test_peer_speed_is_judged_on_paired_rounds_and_a_gap_they_do_not_separate_is_within_noise(bench):
    # Pooled p50s 10% apart, but the rounds disagree: one load spike, not a slower artifact.
    chosen = {"name": "edgekd-int8", "tool": "edgekd", "precision": "int8", "task_metric_truth": 0.9, "p50_ms": 0.24,
              "round_p50_ms": [0.22, 0.25, 0.21, 0.26, 0.22]}
    peer = {"name": "nncf-default", "tool": "nncf-default", "precision": "int8", "task_metric_truth": 0.9, "p50_ms": 0.22,
            "round_p50_ms": [0.23, 0.21, 0.22, 0.22, 0.23]}
    [check] = [c for c in bench.checks([_entry("vad", _target(chosen, [peer]))], 1.0, False) if "peer" in c["check"]]
    assert check["passed"] and "within noise of nncf-default" in check["detail"]
    slower = {**chosen, "round_p50_ms": [0.26, 0.27, 0.25, 0.26, 0.27]}  # slower in every round, by > 5%
    [check] = [c for c in bench.checks([_entry("vad", _target(slower, [peer]))], 1.0, False) if "peer" in c["check"]]
    assert check["passed"] is False and "slower than nncf-default" in check["detail"]


def test_arm64_speed_is_not_measured_here_and_counts_neither_way(bench):
    chosen = {"name": "edgekd-int8", "tool": "edgekd", "precision": "int8", "task_metric_truth": 0.9, "p50_ms": 30.0}
    peer = {"name": "nncf-default", "tool": "nncf-default", "precision": "int8", "task_metric_truth": 0.9, "p50_ms": 20.0}
    target = {**_target(chosen, [peer]), "target": "arm64-cpu"}
    results = {c["check"]: c["passed"] for c in bench.checks([_entry("cls", target)], 1.0, False)}
    assert results["cls arm64-cpu: within 5% of the fastest passing peer"] is None
    assert results["cls arm64-cpu: shipped mask_iou within 1.0 points of fp32"] is True
    assert "NOT MEASURED" in bench._verdict(None)


def test_a_drop_the_test_split_cannot_tell_from_the_limit_says_so(bench):
    """rec intel-cpu at 2688dec: -2.25 points on 400 test lines where validation said +2.50; the check stays judged on
    the drop, and its detail gives the test split's own 95% interval."""
    metric = bench.task_metric("top1")
    reference = np.zeros((400, 2))
    reference[:, 1] = 1.0
    labels = np.ones(400, dtype=np.int64)
    candidate = reference.copy()
    candidate[:9, 1] = -1.0  # 9 of 400 flipped: a 2.25-point drop
    low, high = bench.drop_interval(metric, metric.parts(reference, labels), metric.parts(candidate, labels))
    assert low < 2.25 < high and low >= 0.0
    chosen = {"name": "edgekd-int8", "tool": "edgekd", "precision": "int8", "task_metric_truth": 0.8775, "p50_ms": 7.0,
              "speedup": 1.5, "test_drop_interval": [0.75, 3.75]}
    check = next(c for c in bench.checks([_entry("det", _target(chosen, []))], 100.0, False) if "within 1.0 points" in c["check"])
    assert check["passed"] is False
    assert "95% interval [0.75, 3.75] (within the test split's noise of the limit)" in check["detail"]


def test_a_ship_the_cli_refuses_is_its_one_line_and_a_crash_is_raised(bench, tmp_path, monkeypatch):
    # each ship runs the CLI in a process of its own: exit 2 is a refusal (reported per target), exit 1 a failed gate
    # (the bundles exist), anything else edgekd crashing, which must not pass for a refusal nor for a ship
    model = bench.MODELS["cls"]
    not_onnx = tmp_path / "model.onnx"
    not_onnx.write_bytes(b"\x80\x04 a pickle, not a graph")
    np.savez(tmp_path / "data.npz", x=np.zeros((4, 3, 48, 192), np.float32))
    refused, _seconds = bench.ship(not_onnx, tmp_path / "data.npz", model, tmp_path / "run", False, ["x86-cpu"])
    assert refused.startswith("edgekd: error:") and str(not_onnx) in refused

    monkeypatch.setattr(bench, "_edgekd", lambda argv, echo: (3, "edgekd: internal error: ValueError: boom"))
    with pytest.raises(RuntimeError, match="exited 3: edgekd: internal error"):
        bench.ship(not_onnx, tmp_path / "data.npz", model, tmp_path / "run", False, ["x86-cpu"])
    monkeypatch.setattr(bench, "_edgekd", lambda argv, echo: (1, "gate: FAIL"))
    assert bench.ship(not_onnx, tmp_path / "data.npz", model, tmp_path / "run", False, ["x86-cpu"])[0] is None
