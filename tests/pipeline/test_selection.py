"""Candidate selection: the fastest candidate that passes, never one slower than fp32, and a reason
for every loser."""
from __future__ import annotations

from edgekd.pipeline.selection import MIN_GAIN_OVER_FP32, accuracy_rule, choose, fidelity_rule


def _row(name, p50=None, drop=0.0, precision=None, measured=True):
    row = {"name": name, "precision": precision or name.split("-")[0], "val_drop": drop, "measured": measured}
    if p50 is not None:
        row["p50_ms"] = p50
    return row


def test_fastest_passing_candidate_wins_and_losers_say_why():
    rows = [_row("fp32", 10.0), _row("bf16", 4.0), _row("int8", 2.0, drop=3.0), _row("int8-qat", 3.0, drop=0.1)]
    best = choose(rows, accuracy_rule(1.0))
    assert rows[best]["name"] == "int8-qat"
    assert rows[best]["verdict"].startswith("chosen (fastest passing")
    assert rows[2]["verdict"] == "accuracy drop 3.00 > max_drop 1.0"
    assert rows[1]["verdict"] == ("slower than the chosen int8-qat (0.75x its speed, ratio of p50s, no paired rounds; "
                                  "band 3%)")
    assert rows[0]["verdict"].startswith("slower than the chosen int8-qat")


def test_candidate_slower_than_fp32_is_never_shipped():
    # S8S8 int8 on a VNNI CPU: accurate, but slower than fp32.
    rows = [_row("fp32", 13.3), _row("int8", 17.1)]
    assert rows[choose(rows, accuracy_rule(1.0))]["name"] == "fp32"
    assert rows[1]["verdict"].startswith("slower than fp32 (0.78x its speed")


def test_gain_within_timing_noise_keeps_fp32():
    rows = [_row("fp32", 10.0), _row("int8", 10.0 * (1 - MIN_GAIN_OVER_FP32 / 2))]
    assert rows[choose(rows, accuracy_rule(1.0))]["name"] == "fp32"


def test_a_median_gain_not_seen_in_most_rounds_keeps_fp32():
    # The quickstart case: bf16 3.1% faster in the median, but slower than fp32 in 2 of 5 interleaved rounds.
    fp32, bf16 = _row("fp32", 0.100), _row("bf16", 0.0969)
    fp32["round_p50_ms"], bf16["round_p50_ms"] = [0.100, 0.100, 0.100, 0.100, 0.100], [0.09, 0.09, 0.09, 0.11, 0.12]
    rows = [fp32, bf16]
    assert rows[choose(rows, accuracy_rule(1.0))]["name"] == "fp32"
    assert rows[1]["verdict"].startswith("within noise of fp32 (") and "faster in 3 of 5" in rows[1]["verdict"]
    bf16["round_p50_ms"] = [0.09, 0.09, 0.09, 0.09, 0.12]  # 4 of 5: a real gain
    assert rows[choose(rows, accuracy_rule(1.0))]["name"] == "bf16"


def test_nothing_passing_ships_fp32_and_says_so():
    rows = [_row("int8", 2.0, drop=5.0), _row("fp32", 10.0, drop=0.0)]
    rows[1]["val_drop"] = 0.0
    best = choose(rows, accuracy_rule(1.0))
    assert rows[best]["name"] == "fp32" and "no passing candidate faster beyond noise" in rows[best]["verdict"]
    rows = [_row("fp32", 10.0, drop=2.0), _row("int8", 2.0, drop=5.0)]
    best = choose(rows, accuracy_rule(1.0))
    assert rows[best]["name"] == "fp32" and rows[best]["verdict"] == "chosen (no candidate passed; fp32 shipped)"


def test_without_latency_the_profile_order_decides():
    # arm64 built on x86: accuracy measured here, latency only on the board.
    rows = [_row("int8", drop=0.3), _row("fp32")]
    best = choose(rows, accuracy_rule(1.0))
    assert rows[best]["name"] == "int8" and "profile order" in rows[best]["verdict"]
    assert rows[1]["verdict"] == "later in profile order than the chosen int8"


def test_nothing_measurable_here_ships_the_profile_first_choice():
    # TensorRT without a GPU: the engine is built on the device.
    rows = [_row("int8", measured=False), _row("fp16", measured=False), _row("fp32", measured=False)]
    assert choose(rows, accuracy_rule(1.0)) == 0
    assert "edgekd bench on the device" in rows[0]["verdict"]
    assert all("not measurable here" in r["verdict"] for r in rows[1:])


def test_fidelity_rule_reads_top1_agreement():
    rows = [{"name": "fp32", "precision": "fp32", "top1_agreement": 1.0, "p50_ms": 10.0},
            {"name": "int8", "precision": "int8", "top1_agreement": 0.90, "p50_ms": 3.0},
            {"name": "bf16", "precision": "bf16", "top1_agreement": 0.99, "p50_ms": 5.0}]
    best = choose(rows, fidelity_rule(0.95))
    assert rows[best]["name"] == "bf16" and rows[1]["verdict"] == "top-1 agreement 0.900 < 0.95"


def test_a_drop_exactly_at_the_limit_passes_selection():
    """0.95 -> 0.94 on 300 validation samples is 3 samples, exactly 1 point (issue 20, item 2)."""
    from edgekd.core.metrics import accuracy_drop

    assert accuracy_drop(0.95, 0.94) == 1.0000000000000009  # what a comparison of floats used to see
    rows = [_row("fp32", 10.0), _row("int8", 2.0, drop=accuracy_drop(0.95, 0.94, "absolute", samples=300))]
    assert rows[choose(rows, accuracy_rule(1.0))]["name"] == "int8"
    rows = [_row("fp32", 10.0), _row("int8", 2.0, drop=accuracy_drop(0.95, 0.94))]  # counts unknown: within rounding
    assert rows[choose(rows, accuracy_rule(1.0))]["name"] == "int8"
    rows = [_row("fp32", 10.0), _row("int8", 2.0, drop=accuracy_drop(0.95, 281 / 300, "absolute", samples=300))]
    assert rows[choose(rows, accuracy_rule(1.0))]["name"] == "fp32"  # one sample more is over
    assert rows[1]["verdict"] == "accuracy drop 1.33 > max_drop 1.0"


def _rounds(row, values):
    row["round_p50_ms"] = values
    return row


def test_when_the_rounds_do_not_separate_two_passing_candidates_the_simpler_ships():
    # int8 and its fallback both beat fp32 in every round; the fallback is faster in the median, but in only 3 of 5.
    fp32 = _rounds(_row("fp32", 0.060), [0.06] * 5)
    int8 = _rounds(_row("int8", 0.031), [0.030, 0.031, 0.032, 0.029, 0.031])
    fallback = _rounds(_row("int8-fallback", 0.030), [0.031, 0.029, 0.030, 0.028, 0.032])
    rows = [fp32, int8, fallback]
    best = choose(rows, accuracy_rule(1.0))
    assert rows[best]["name"] == "int8"
    assert rows[best]["verdict"].startswith("chosen (simplest within noise of the fastest, int8-fallback")
    assert fallback["verdict"].startswith("within noise of int8 (") and "faster in 3 of 5" in fallback["verdict"]
    assert fallback["verdict"].endswith("the simpler ships")


def test_a_clearly_faster_candidate_still_beats_a_simpler_one():
    fp32 = _rounds(_row("fp32", 0.060), [0.06] * 5)
    int8 = _rounds(_row("int8", 0.040), [0.040] * 5)
    fallback = _rounds(_row("int8-fallback", 0.030), [0.030] * 5)
    rows = [fp32, int8, fallback]
    assert rows[choose(rows, accuracy_rule(1.0))]["name"] == "int8-fallback"
    assert int8["verdict"].startswith("slower than the chosen int8-fallback")


def test_a_gain_over_fp32_that_is_only_noise_says_within_noise():
    fp32, int8 = _rounds(_row("fp32", 0.031), [0.031] * 5), _rounds(_row("int8", 0.029), [0.028, 0.035, 0.028, 0.036, 0.029])
    int8["p50_ms"] = 0.029
    rows = [fp32, int8]
    assert rows[choose(rows, accuracy_rule(1.0))]["name"] == "fp32"
    assert int8["verdict"].startswith("within noise of fp32") and "faster in 3 of 5" in int8["verdict"]


def test_task_metric_limits_and_fidelity_limits():
    from edgekd.core.thresholds import Thresholds
    from edgekd.pipeline.selection import accuracy_limit, all_of, fidelity_limits_rule
    from edgekd.runtimes.profiles import load_profile

    profile = load_profile("x86-cpu")
    gate = Thresholds(max_drop=2.0, max_metric_drop=0.5, min_sqnr_db=25)
    assert accuracy_limit(gate, profile, "mask_iou") == (0.5, "gate.max_metric_drop")
    assert accuracy_limit(gate, profile) == (2.0, "gate.max_drop")  # a classifier's top-1 keeps max_drop
    rule = all_of(accuracy_rule(0.5), fidelity_limits_rule(gate))
    assert rule({"val_drop": 0.4, "val_sqnr_db": 30.0, "val_cosine": 0.99}) is None
    assert rule({"val_drop": 0.4, "val_sqnr_db": 20.0}) == "sqnr_db 20 < gate.min_sqnr_db 25"
    assert rule({"val_drop": 0.6, "val_sqnr_db": 20.0}).startswith("accuracy drop 0.60 > max_drop 0.5")


def test_the_decision_pairs_rounds_and_never_quotes_a_pooled_p50():
    """Issue 32 item 11: the compile stage's pooled fp32 p50 (0.112 ms) sat below most of its own rounds (median
    0.140), so int8 read 'not faster' against a number no round showed. The rounds pair int8 with fp32: int8 is
    faster in every round, by a median 1.17x."""
    fp32 = _rounds(_row("fp32", 0.112), [0.10, 0.14, 0.17, 0.14, 0.15])
    int8 = _rounds(_row("int8", 0.130), [0.085, 0.12, 0.145, 0.12, 0.125])
    rows = [fp32, int8]
    assert rows[choose(rows, accuracy_rule(1.0))]["name"] == "int8"
    assert "0.112" not in int8["verdict"] and "0.130" not in int8["verdict"]
    assert int8["verdict"].startswith("chosen (fastest passing; faster than fp32 (1.17x its speed, median of 5 paired")


def test_a_paired_gain_inside_the_band_ships_the_simpler_and_says_within_noise():
    # every round 2% faster: consistent, but inside the 3% band (the pooled p50s even say 10%)
    fp32 = _rounds(_row("fp32", 0.110), [0.102] * 5)
    int8 = _rounds(_row("int8", 0.100), [0.100] * 5)
    rows = [fp32, int8]
    assert rows[choose(rows, accuracy_rule(1.0))]["name"] == "fp32"
    assert int8["verdict"] == ("within noise of fp32 (1.02x its speed, median of 5 paired rounds, faster in 5 of 5; "
                               "band 3%)")


def test_a_size_limit_fp32_fails_ships_the_passing_int8_even_when_slower():
    """Trial defect (session 13): a profile's gate.max_size_kb 6 shipped fp32 (9.6 KB, FAIL at the gate) because the
    int8 model (4.8 KB, drop 0) was slower than fp32, and selection knew no size rule."""
    from edgekd.pipeline.selection import all_of, size_rule

    rows = [_row("fp32", 10.0), _row("int8", 12.0)]
    rows[0]["bytes"], rows[1]["bytes"] = 9830, 4915
    best = choose(rows, all_of(accuracy_rule(1.0), size_rule(6, "target my-x86's gate")))
    assert rows[best]["name"] == "int8"
    assert rows[0]["verdict"] == "size 9.6 KB > max_size_kb 6 (target my-x86's gate)"
    assert rows[best]["verdict"].startswith("chosen (fastest passing; fp32 fails: size 9.6 KB")
    # Without the limit, the slower int8 still loses to fp32.
    assert rows[choose(rows, all_of(accuracy_rule(1.0), size_rule(None, "gate")))]["name"] == "fp32"


def test_a_speedup_limit_fails_candidates_not_that_much_faster_than_fp32():
    from edgekd.pipeline.selection import all_of, speedup_rule

    rows = [_row("fp32", 10.0), _row("fp16", 8.0), _row("int8", 4.0, drop=0.5)]
    best = choose(rows, all_of(accuracy_rule(1.0), speedup_rule(2.0, "gate")))
    assert rows[best]["name"] == "int8" and rows[1]["verdict"] == "speedup 1.25x (ratio of p50s) < min_speedup 2x (gate)"
    untimed = [_row("fp32"), _row("int8", drop=0.5)]  # latency not measurable here: the device's bench decides
    assert untimed[choose(untimed, speedup_rule(2.0, "gate"))]["name"] == "fp32"


def test_the_compile_stage_rule_takes_the_profiles_size_and_speedup_limits_where_stricter():
    from types import SimpleNamespace

    from edgekd.core.thresholds import Thresholds
    from edgekd.pipeline.stages.compile import selection_rule
    from edgekd.runtimes import load_profile

    profile = load_profile("x86-cpu")
    profile = profile.model_copy(update={"name": "my-x86", "gate": Thresholds(max_size_kb=6, min_speedup=1.1)})
    ctx = SimpleNamespace(cfg=SimpleNamespace(gate=Thresholds(max_drop=1.0, max_size_kb=100, min_speedup=1.5)),
                          task=SimpleNamespace(metric="top1"))
    rule = selection_rule(ctx, profile)
    big = {**_row("int8", 4.0), "bytes": 9830, "fp32_p50_ms": 10.0}
    assert rule(big) == "size 9.6 KB > max_size_kb 6 (target my-x86's gate)"
    slow = {**_row("int8", 8.0), "bytes": 100, "fp32_p50_ms": 10.0}
    assert rule(slow) == "speedup 1.25x (ratio of p50s) < min_speedup 1.5x (gate)"
    assert rule({**slow, "p50_ms": 5.0}) is None


def test_a_bundle_whose_gate_asks_a_speedup_carries_the_fp32_model(tmp_path):
    from types import SimpleNamespace

    from edgekd.core.thresholds import Thresholds
    from edgekd.pipeline.stages.compile import _speed_reference
    from edgekd.runtimes import load_profile
    from edgekd.runtimes.base import Artifact

    fp32 = Artifact("ort", "fp32", tmp_path / "fp32", "model.onnx", ["model.onnx"])
    int8 = Artifact("ort", "int8", tmp_path / "int8", "model.onnx", ["model.onnx"])
    candidates, profile = [("fp32", fp32), ("int8", int8)], load_profile("x86-cpu")

    def carried(gate: Thresholds, best: int):
        info = {}
        ctx = SimpleNamespace(cfg=SimpleNamespace(gate=gate))
        return _speed_reference(ctx, profile, candidates, best, info), info

    files, info = carried(Thresholds(min_speedup=1.2), best=1)
    assert files == {"fp32-reference/model.onnx": tmp_path / "fp32" / "model.onnx"}
    assert info["speed_reference"]["precision"] == "fp32" and info["speed_reference"]["folder"] == "fp32-reference"
    assert carried(Thresholds(min_speedup=1.2), best=0) == ({}, {})  # fp32 shipped: nothing to compare
    assert carried(Thresholds(), best=1) == ({}, {})  # no speed-up asked: the bundle stays one model


def test_an_unmeasurable_int8_is_judged_by_its_quantize_stage_drop_and_quotes_it():
    """Trial defect (session 11, carried): a TensorRT target shipped int8 first in profile order without a word of the
    drop the quantize stage had measured for the same Q/DQ file, and shipped it even when that drop failed the limit."""
    rows = [{**_row("int8", measured=False), "proxy_val_drop": 0.4}, _row("fp16", measured=False), _row("fp32", measured=False)]
    assert choose(rows, accuracy_rule(1.0)) == 0
    assert "its Q/DQ model dropped 0.40 points on validation with onnxruntime" in rows[0]["verdict"]
    rows = [{**_row("int8", measured=False), "proxy_val_drop": 2.5}, _row("fp16", measured=False), _row("fp32", measured=False)]
    assert rows[choose(rows, accuracy_rule(1.0))]["name"] == "fp16"
    assert rows[0]["verdict"] == ("not shipped: its Q/DQ model, run with onnxruntime on validation: accuracy drop 2.50 > "
                                  "max_drop 1.0")


def test_an_int8_only_profile_whose_one_candidate_fails_says_so_truly():
    """Trial defect (session 13): precisions [int8] whose int8 failed max_drop 0.3 on validation read "no candidate
    passed; fp32 shipped" (there was no fp32) under a warning that the drop "cannot confirm the limit"."""
    from types import SimpleNamespace

    from edgekd.core.thresholds import Thresholds
    from edgekd.pipeline.selection import unconfirmed_drop

    rows = [_row("int8", 2.0, drop=0.93)]
    rows[0]["val_drop_bound"] = 2.78
    best = choose(rows, accuracy_rule(0.3))
    assert rows[best]["verdict"] == ("chosen (no candidate passed, and the profile builds no fp32 to fall back on: the "
                                     "first in profile order shipped)")
    profile = SimpleNamespace(name="only8", precisions=["int8"], gate=Thresholds())
    said = unconfirmed_drop(Thresholds(max_drop=0.3), profile, "top1", rows[best], 108)
    assert said.startswith("only8: int8 drops 0.93 points of top1 on 108 validation samples, over the limit 0.3")
    assert "cannot confirm" not in said


def test_an_unmeasurable_targets_int8_over_the_quantize_budget_is_not_shipped():
    """Review (session 13): an int8 model no fallback brought within the budget recorded no drop, so a TensorRT target
    (not runnable here) shipped it first in profile order; and the Q/DQ file's size was held to the engine's limit."""
    from types import SimpleNamespace

    from edgekd.pipeline.selection import all_of, size_rule
    from edgekd.pipeline.stages.compile import _quantize_stage_drop

    def stage_drop(recipe: dict):
        manifest = SimpleNamespace(metrics=lambda stage: {"method": "ptq", "recipes": {"trt": recipe}})
        return _quantize_stage_drop(SimpleNamespace(manifest=manifest), SimpleNamespace(quantization=SimpleNamespace(name="trt")))

    assert stage_drop({"fallback": {"val_drop": 0.3}}) == 0.3
    assert stage_drop({"over_budget": "int8 drops 4.4", "over_budget_drop": 4.4}) == 4.4
    assert stage_drop({"over_budget": "int8 drops 4.4"}) == float("inf")  # a record from before the drop was kept
    rows = [{**_row("int8", measured=False), "proxy_val_drop": 4.4, "bytes": 10**7}, _row("fp16", measured=False)]
    assert rows[choose(rows, accuracy_rule(1.0))]["name"] == "fp16"
    rows = [{**_row("int8", measured=False), "proxy_val_drop": 0.2, "bytes": 10**7}, _row("fp16", measured=False)]
    assert rows[choose(rows, all_of(accuracy_rule(1.0), size_rule(1000, "gate")))]["name"] == "int8"
