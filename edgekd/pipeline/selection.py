"""Which candidate artifact a target ships: the fastest one that passes the accuracy rule, and never
one slower than the fp32 baseline. Shared by the compile stage and benchmarks/targets_architectures.py.

A candidate is a dict with at least `name` and `precision`; `p50_ms` when its latency was measured
here, and whatever metrics the rule reads. choose() writes a `verdict` into each: why it won or lost.
"""
from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from edgekd.core.metrics import at_least, shown_against, within_limit
from edgekd.device.noise import FASTER, NOISE_BAND, compare_speed, judged_speedup

Candidate = dict[str, Any]
Rule = Callable[[Candidate], "str | None"]  # None: passes; otherwise why it fails

# A candidate must beat fp32 beyond timing noise to replace it (device.noise.compare_speed, the one rule for
# "faster"): fp32 is the more accurate choice at equal speed.
MIN_GAIN_OVER_FP32 = NOISE_BAND
BASELINE = "fp32"
# Simplest first: when the timings do not separate two passing candidates, the simpler one ships
# (fewer numerics to go wrong on the device, the more accurate model at equal speed).
SIMPLER_FIRST = ("fp32", "fp16", "bf16", "int8", "int8-qat", "int8-fallback")


def plan(profile, float_precisions: tuple[str, ...], fp32_onnx: Path,
         int8_onnx: dict[str, Path]) -> list[tuple[str, str, Path]]:
    """(name, precision, ONNX source) of each candidate, in the profile's order of preference.

    Float candidates compile from the fp32 export when the backend has kernels for that precision;
    every int8 model given (PTQ, QAT, fallback; by name) is a candidate when the profile allows int8.
    """
    out = []
    for precision in profile.precisions:
        if precision == "int8":
            out += [(name, "int8", path) for name, path in int8_onnx.items()]
        elif precision in float_precisions:
            out.append((precision, precision, Path(fp32_onnx)))
    return out


class AccuracyLimit(NamedTuple):
    max_drop: float
    source: str  # where the number comes from, for the verdicts and errors that quote it


def accuracy_limit(gate, profile, metric: str = "top1") -> AccuracyLimit:
    """How far a target's int8 or reduced-precision candidate may drop: THE rule, used by candidate selection
    (compile stage) and by the int8 budget (quantize stage).

    The pipeline's gate.max_drop, or the target profile's gate.max_drop when that is stricter. Never looser
    than the gate, so selection cannot ship a candidate the gate stage then fails for its drop; and a looser
    gate does loosen it, unless the target's own profile demands less (the built-in profiles do not).
    `gate`: the config's gate section (max_drop); `profile`: the target's TargetProfile.
    `metric`: the task's (a named task metric's drop has gate.max_metric_drop when set: Thresholds.metric_drop_limit).
    """
    key = "gate.max_metric_drop" if gate.metric_drop_limit(metric) is not gate.max_drop else "gate.max_drop"
    own, ours = profile.gate.given().get("max_drop"), gate_drop_budget(gate.metric_drop_limit(metric))
    if own is not None and own < ours:
        return AccuracyLimit(own, f"target {profile.name}'s gate.max_drop, stricter than {key} {ours:g}")
    return AccuracyLimit(ours, key)


def unconfirmed_drop(gate, profile, metric: str, row: Candidate, samples: int) -> str | None:
    """What to say when the chosen candidate `row` meets its accuracy limit on the validation split but the split is
    too small to confirm it: its drop's 95% bound (core.task_metrics.drop_bound, `val_drop_bound`) is past the limit.
    The choice stands (the limit is the user's, on the data they gave); the test split and the gate judge it again,
    and the user learns that more validation data is what would make the choice reliable. None: nothing to say."""
    limit, bound = accuracy_limit(gate, profile, metric).max_drop, row.get("val_drop_bound")
    if row.get("val_drop") is not None and row["precision"] != "fp32" and not within_limit(row["val_drop"], limit):
        return (f"{profile.name}: {row['name']} drops {row['val_drop']:.2f} points of {metric} on {samples} validation "
                f"samples, over the limit {limit:g}, and its profile builds nothing else to ship (precisions "
                f"{list(profile.precisions)}); shipped for the gate to judge on the test split: add fp32 to the "
                "profile's precisions for a candidate that keeps the accuracy")
    if bound is None or row.get("val_drop") is None or bound <= limit or row["precision"] == "fp32":
        return None
    return (f"{profile.name}: {row['name']} drops {row['val_drop']:.2f} points of {metric} on {samples} validation "
            f"samples (limit {limit:g}), but that many samples cannot confirm the limit: its drop may be up to "
            f"{bound:.2f} points (95% bound, paired bootstrap); give more validation data (more samples, or a larger "
            "data.val_fraction) for a choice the test split will bear out")


def gate_drop_budget(max_drop: float | None) -> float:
    """gate.max_drop: null switches the drop check off; as a budget that is an infinite one."""
    return float("inf") if max_drop is None else max_drop


def accuracy_rule(max_drop: float, key: str = "val_drop", source: str | None = None) -> Rule:
    """Fails candidates whose accuracy drop (against the fp32 student) exceeds `max_drop` (see accuracy_limit);
    a drop exactly at the limit passes. `source`: where the limit comes from, quoted in the verdict."""
    where = f" ({source})" if source else ""

    def rule(row: Candidate) -> str | None:
        if within_limit(row[key], max_drop):
            return None
        # Which samples judged it (compile's judged_on): an int8 model the quantize stage passed on its search samples
        # can miss here on samples the search did not see, and the reason said nothing of that.
        on = f" on {row['judged_on']}" if row.get("judged_on") else ""
        return f"accuracy drop {shown_against(row[key], max_drop)} > max_drop {max_drop}{where}{on}"
    return rule


def increase_rule(limit: float, key: str = "val_perplexity", source: str | None = None) -> Rule:
    """Fails candidates whose lower-is-better metric (a language model's perplexity) exceeds `limit` (a value at the
    limit passes); `source`: where the limit comes from, quoted in the verdict."""
    where = f" ({source})" if source else ""

    def rule(row: Candidate) -> str | None:
        return None if within_limit(row[key], limit) else f"{key.replace('_', ' ')} {row[key]:.3f} over the limit {limit:.3f}{where}"
    return rule


def fidelity_rule(min_agreement: float, key: str = "top1_agreement") -> Rule:
    """Fails candidates whose top-1 agreement with the fp32 reference is below `min_agreement`."""
    def rule(row: Candidate) -> str | None:
        return f"top-1 agreement {row[key]:.3f} < {min_agreement}" if row[key] < min_agreement else None
    return rule


def fidelity_limits_rule(gate) -> Rule:
    """Fails candidates whose validation outputs depart from fp32's beyond gate.min_cosine or gate.min_sqnr_db (the
    limits the gate applies to the bench's numbers, so selection cannot ship a candidate the gate then fails)."""
    def rule(row: Candidate) -> str | None:
        for key, field in (("min_cosine", "val_cosine"), ("min_sqnr_db", "val_sqnr_db")):
            limit = getattr(gate, key, None)
            if limit is not None and row.get(field) is not None and not at_least(row[field], limit):
                return f"{field.removeprefix('val_')} {row[field]:.4g} < gate.{key} {limit:g}"
        return None
    return rule


def size_rule(max_kb: float | None, source: str) -> Rule:
    """Fails candidates whose files on disk (row["bytes"], the size the gate checks) exceed `max_kb`; None: no limit."""
    def rule(row: Candidate) -> str | None:
        if max_kb is None or row.get("bytes") is None or row["bytes"] / 1024 <= max_kb:
            return None
        return f"size {shown_against(row['bytes'] / 1024, max_kb, 1)} KB > max_size_kb {max_kb:g} ({source})"
    return rule


def speedup_rule(min_speedup: float | None, source: str) -> Rule:
    """Fails timed candidates not `min_speedup` times as fast as fp32 (row["fp32_p50_ms"] and fp32_round_p50_ms, set
    by choose()) by the gate's rule (device.noise.judged_speedup: the paired rounds' median, else the p50s' ratio);
    fp32 itself is 1x. Untimed candidates pass: the gate skips the check and the device's bench decides."""
    def rule(row: Candidate) -> str | None:
        base = row.get("fp32_p50_ms")
        if min_speedup is None or base is None or "p50_ms" not in row:
            return None
        if row["p50_ms"] <= 0:
            return None
        speedup, how = judged_speedup(row, {"p50_ms": base, "round_p50_ms": row.get("fp32_round_p50_ms")})
        return None if at_least(speedup, min_speedup) else \
            f"speedup {shown_against(speedup, min_speedup)}x ({how}) < min_speedup {min_speedup:g}x ({source})"
    return rule


def all_of(*rules: Rule) -> Rule:
    """The first failure of several rules, or None when all pass."""
    def rule(row: Candidate) -> str | None:
        return next((failure for failure in (r(row) for r in rules) if failure), None)
    return rule


def choose(rows: list[Candidate], rule: Rule, measured_key: str = "measured") -> int:
    """Index of the candidate to ship, in the order the profile lists them; fills in every verdict."""
    baseline = next((r for r in rows if r["name"] == BASELINE), None)
    if baseline is not None and "p50_ms" in baseline:
        for row in rows:  # what a speed-up rule compares with
            row.setdefault("fp32_p50_ms", baseline["p50_ms"])
            if baseline.get("round_p50_ms"):  # paired with the row's own rounds (speedup_rule), as the gate pairs them
                row.setdefault("fp32_round_p50_ms", baseline["round_p50_ms"])
    # fp32 that fails the rule itself (over a size limit) is no bar to clear: a passing candidate ships even when it is
    # not faster than fp32.
    fp32_fails = rule(baseline) if baseline is not None and baseline.get(measured_key, True) else None
    bar = baseline if not fp32_fails else None
    for row in rows:
        row["verdict"] = _screen(row, bar, rule, measured_key)
    if not any(row.get(measured_key, True) for row in rows):
        return _profile_order(rows, rule)
    eligible = [i for i, r in enumerate(rows) if r["verdict"] == "eligible"]
    timed = [i for i in eligible if "p50_ms" in rows[i]]
    if timed and len(timed) == len(eligible):
        best = _simplest_within_noise(rows, timed, min(timed, key=lambda i: _typical_ms(rows[i])))
    elif eligible:  # latency not measurable here (an ARM board, a GPU): the profile's order decides
        best = eligible[0]
    else:  # nothing passed: ship fp32 (the gate stage will fail the run if fp32 fails too)
        best = next((i for i, r in enumerate(rows) if r is baseline), 0)
    for i, row in enumerate(rows):
        if i == best:
            row["verdict"] = "chosen" + _how(row, eligible, baseline, fp32_fails)
        elif row["verdict"] == "eligible":
            row["verdict"] = _lost_to(row, rows[best])
    return best


def _typical_ms(row: Candidate) -> float:
    """The time the paired comparison works from: the median of the per-round medians when rounds were timed (a
    pooled p50 can fall in another machine state than most rounds), else the p50."""
    rounds = row.get("round_p50_ms") or []
    return statistics.median(rounds) if rounds else row["p50_ms"]


def _complexity(row: Candidate) -> int:
    return SIMPLER_FIRST.index(row["name"]) if row["name"] in SIMPLER_FIRST else len(SIMPLER_FIRST)


def _simplest_within_noise(rows: list[Candidate], timed: list[int], fastest: int) -> int:
    """The simplest timed candidate that the fastest one does not beat beyond timing noise (device.noise.compare_speed,
    the same rule as against fp32)."""
    for i in sorted(timed, key=lambda i: _complexity(rows[i])):
        if _complexity(rows[i]) >= _complexity(rows[fastest]):
            break
        comparison = compare_speed(rows[fastest], rows[i])
        if comparison is not None and comparison.outcome != FASTER:
            rows[i]["within_noise_of"] = rows[fastest]["name"]
            rows[fastest]["within_noise"] = f"{comparison.describe(rows[i]['name'])}: the simpler ships"
            return i
    return fastest


def _profile_order(rows: list[Candidate], rule: Rule) -> int:
    """Nothing runs here (a TensorRT engine is built on the device): ship the profile's first choice and let `edgekd
    bench` on the device check it. An int8 candidate's Q/DQ model was scored on validation with onnxruntime by the
    quantize stage (`proxy_val_drop`): one that failed the rule there is passed over, and the chosen one's is quoted."""
    best = None
    for i, row in enumerate(rows):
        proxy = row.get("proxy_val_drop")
        # accuracy only: the size of the Q/DQ file is not that of the engine the device builds from it
        failure = rule({**row, "val_drop": proxy, "bytes": None}) if proxy is not None else None
        if failure:
            row["verdict"] = f"not shipped: its Q/DQ model, run with onnxruntime on validation: {failure}"
        elif best is None:
            best = i
    best = 0 if best is None else best
    for i, row in enumerate(rows):
        proxy = row.get("proxy_val_drop")
        quoted = (f"; its Q/DQ model dropped {proxy:.2f} points on validation with onnxruntime" if proxy is not None else "")
        if i == best:
            row["verdict"] = f"chosen (first in profile order; not measurable here{quoted}, check with edgekd bench on the device)"
        elif "verdict" not in row or not row["verdict"].startswith("not shipped"):
            row["verdict"] = f"later in profile order than {rows[best]['name']}; not measurable here"
    return best


def _screen(row: Candidate, baseline: Candidate | None, rule: Rule, measured_key: str) -> str:
    if not row.get(measured_key, True):
        return "not measurable here (built on the device)"
    failure = rule(row)
    if failure:
        return failure
    if baseline is not None and row is not baseline and "p50_ms" in row and "p50_ms" in baseline:
        return _not_faster(row, baseline) or "eligible"
    return "eligible"


def _not_faster(row: Candidate, baseline: Candidate) -> str | None:
    """Why `row` does not beat `baseline` (fp32) beyond timing noise, or None when it does (device.noise.compare_speed:
    the paired per-round speed-up outside the noise band, in most rounds)."""
    comparison = compare_speed(row, baseline)
    if comparison is None or comparison.outcome == FASTER:
        return None
    return comparison.describe(baseline["name"])


def _how(row: Candidate, eligible: list[int], baseline: Candidate | None, fp32_fails: str | None) -> str:
    if not eligible:
        if row is baseline:
            return " (no candidate passed; fp32 shipped)"
        return " (no candidate passed, and the profile builds no fp32 to fall back on: the first in profile order shipped)"
    if row.get("within_noise_of"):
        return f" (simplest within noise of the fastest, {row['within_noise_of']})"
    if "p50_ms" not in row:
        return " (first passing in profile order)"
    if row is baseline:
        return f" ({BASELINE} baseline; no passing candidate faster beyond noise)"
    if fp32_fails:  # fp32 is no bar to clear (over a size limit)
        return f" (fastest passing; {BASELINE} fails: {fp32_fails})"
    comparison = compare_speed(row, baseline) if baseline is not None else None
    return f" (fastest passing; {comparison.describe(BASELINE)})" if comparison else " (fastest passing)"


def _lost_to(row: Candidate, best: Candidate) -> str:
    if row.get("within_noise"):
        return row["within_noise"]
    comparison = compare_speed(row, best)
    if comparison is not None:
        return comparison.describe(f"the chosen {best['name']}")
    return f"later in profile order than the chosen {best['name']}"


def int8_budget(ctx, recipe_name: str) -> float:
    """quantize.max_drop, else the strictest accuracy limit (pipeline.selection.accuracy_limit, the rule candidate
    selection applies) among the targets sharing this recipe: the int8 model is made to pass their selection."""
    if ctx.cfg.quantize.max_drop is not None:
        return ctx.cfg.quantize.max_drop
    from edgekd.pipeline.target_runtime import run_profile

    profiles = [run_profile(ctx, name) for name in ctx.cfg.targets]
    metric = ctx.task.metric
    limits = [accuracy_limit(ctx.cfg.gate, p, metric).max_drop for p in profiles
              if p.quantization and p.quantization.name == recipe_name]
    return min(limits, default=gate_drop_budget(ctx.cfg.gate.metric_drop_limit(metric)))
