"""The release gate: thresholds on accuracy drop, speedup, size and fidelity to fp32; a failure is exit code 1.

A report whose `task_metric` is not top1 holds that metric in its `top1` fields: its drop is checked against
max_metric_drop when set, else max_drop. min_cosine and min_sqnr_db check each row's `fidelity` (the worst output).
A language model's (task_metric perplexity, lower is better: core.metrics.PERPLEXITY) is checked against max_increase
(perplexity at most (1 + it) x the reference's) and min_greedy_agreement (rows' token_agreement with fp32).

Drops (absolute points or relative percent, from counts of correct samples): edgekd.core.metrics.accuracy_drop.
Speedup: at batch 1, over the same target's fp32 artifact (same report, same machine): the median of the paired
rounds' ratios where both rows carry rounds (device.noise.judged_speedup, the number the rows' reasons quote), else
fp32's p50 / the artifact's p50; the check's text says which.
Size: bytes of the model files / 1024.
The reference is a name in the report's `references` (teacher, student_fp32) or an artifact row
(e.g. x86-cpu/fp32); with a baseline report it is taken from there, and only if both reports were
measured on the same evaluation set (sha256).
A skipped check (an artifact not measurable on this machine) is counted apart, never as a pass; a gate
with no check actually evaluated fails unless `allow_empty` is set: "nothing failed" is not "all passed".
Lean: no torch, so CI can gate a report on any machine.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgekd.core.errors import ArtifactError
from edgekd.core.metrics import FIDELITY, accuracy_drop, at_least, metric_spec, shown_against, within_limit
from edgekd.core.thresholds import Thresholds  # the one model (core: profiles use it too); re-exported here
from edgekd.device.noise import judged_speedup


@dataclass
class Check:
    artifact: str
    threshold: str
    passed: bool
    reason: str
    skipped: bool = False


def reference_value(report: dict[str, Any], name: str, key: str = "top1", baseline: dict[str, Any] | None = None) -> float:
    """The named reference's metric (`key`: top1, perplexity), from the baseline report when given (same evaluation set
    only)."""
    source = report if baseline is None else baseline
    if baseline is not None:
        ours, theirs = report.get("eval_set", {}).get("sha256"), baseline.get("eval_set", {}).get("sha256")
        if not ours or ours != theirs:
            raise ArtifactError(f"baseline report was measured on a different evaluation set (sha256 {str(theirs)[:12]} "
                                f"vs {str(ours)[:12]}); accuracy drops between them mean nothing. "
                                "Bench both on the same eval.npz")
        _same_models(report, baseline)
    if source.get("references", {}).get(name, {}).get(key) is not None:
        return source["references"][name][key]
    row = next((r for r in source.get("rows", []) if r["artifact"] == name and r.get(key) is not None), None)
    if row is None:  # only the names that hold the metric are offered (a TensorRT row on a workstation holds none)
        known = [*(n for n, ref in source.get("references", {}).items() if isinstance(ref, dict) and ref.get(key) is not None),
                 *(r["artifact"] for r in source.get("rows", []) if r.get(key) is not None)]
        what = "top-1" if key == "top1" else key
        # Only a device's report lacks the build run's references; another report simply has no such name, and none
        # is known to have it: the hint says where the build run's references are, not that '{name}' is among them.
        hint = "" if baseline is not None or not _bench_of_bundles(source) else (
            "; a device's report holds its bundles only: to measure against the build run's references, give the build "
            "machine's report.json as --baseline, or --reference one of these")
        raise ArtifactError(f"report has no reference '{name}' with a {what}; available: {', '.join(known)}{hint}")
    return row[key]


def _bench_of_bundles(report: dict[str, Any]) -> bool:
    """A report `edgekd bench` made of bundles (on a device): each of its references was measured from a bundle and
    says so (its `source`), or it has none; a run's bench stage records the teachers and the student it built,
    without a source."""
    return all(isinstance(ref, dict) and ref.get("source") for ref in (report.get("references") or {}).values())


def _models(report: dict[str, Any], shipped_only: bool) -> set[str]:
    return {row["model_sha256"] for row in report.get("rows", [])
            if isinstance(row.get("model_sha256"), str) and (row.get("shipped") or not shipped_only)}


def _same_models(report: dict[str, Any], baseline: dict[str, Any]) -> None:
    """A baseline from a run that built other models (another ship on the same data) would lend its reference to
    these: the drop would be measured against a model the report never measured. Reports from before rows named
    their model (model_sha256) are not checked."""
    ours, theirs = _models(report, shipped_only=True), _models(baseline, shipped_only=False)
    if ours and theirs and not ours & theirs:
        raise ArtifactError("the baseline report measured none of the models this report ships (their model_sha256 "
                            "differ): its reference belongs to another model; give the report.json of the run that "
                            "built these bundles")


def reference_top1(report: dict[str, Any], name: str, baseline: dict[str, Any] | None = None) -> float:
    return reference_value(report, name, "top1", baseline)


def check_row(row: dict[str, Any], reference: float | None, baseline_p50: float | None, limits: Thresholds,
              samples: int | None = None, metric: str = "top1", baseline_latency: dict[str, Any] | None = None) -> list[Check]:
    """The checks of one artifact; `samples`: the size of the evaluation set, so drops come from counts. `metric`: the
    report's task_metric: top-1, a task metric (held in `top1`) or perplexity (core.metrics.metric_spec).
    `baseline_latency`: the fp32 row's batch-1 latency stats, whose rounds pair with the row's own."""
    name, spec = row["artifact"], metric_spec(metric)
    if row.get(spec.key) is None:
        return [Check(name, "measured", True, "skipped: not measurable on this machine; gate the report from the device",
                      skipped=True)]
    if spec.higher_is_better:
        checks = _drop_checks(row, reference, limits, samples, metric) + fidelity_checks(name, row.get("fidelity") or {}, limits)
    else:
        checks = _increase_checks(row, reference, limits)
    if limits.min_speedup is not None and row.get("not_timed"):  # arm64 on an x86 build machine: the device's to say
        checks.append(Check(name, "min_speedup", True, f"skipped: latency not timed here ({row['not_timed']}); gate the "
                            "report from the device (edgekd bench there)", skipped=True))
    elif limits.min_speedup is not None:
        own = _batch1(row) or {"p50_ms": row.get("p50_ms")}
        fp32 = baseline_latency if baseline_latency and baseline_latency.get("p50_ms") == baseline_p50 else {"p50_ms": baseline_p50}
        checks.append(_speedup_check(name, own, fp32, limits.min_speedup, "bundle" in row))
    if limits.max_size_kb is not None:
        size_kb = row["bytes"] / 1024
        checks.append(Check(name, "max_size_kb", size_kb <= limits.max_size_kb,
                            f"size {shown_against(size_kb, limits.max_size_kb, 1)} KB (limit {limits.max_size_kb:g} KB)"))
    return checks


def _drop_checks(row: dict[str, Any], reference: float, limits: Thresholds, samples: int | None, metric: str) -> list[Check]:
    drop_limit = limits.metric_drop_limit(metric)
    if drop_limit is None:
        return []
    drop = accuracy_drop(reference, row["top1"], limits.drop_type, samples)
    unit = "points" if limits.drop_type == "absolute" else "%"
    key = "max_metric_drop" if drop_limit is not limits.max_drop else "max_drop"
    what = "top-1" if metric == "top1" else metric
    return [Check(row["artifact"], key, within_limit(drop, drop_limit),
                  f"{what} drop {shown_against(drop, drop_limit)} {unit} vs {limits.reference} (limit {drop_limit:g} {unit})")]


def _increase_checks(row: dict[str, Any], reference: float | None, limits: Thresholds) -> list[Check]:
    """A lower-is-better metric (perplexity): at most (1 + max_increase) x the reference's; greedy agreement with the
    fp32 model (row token_agreement) at least min_greedy_agreement where it was measured."""
    name, value, checks = row["artifact"], row["perplexity"], []
    if limits.max_increase is not None:
        if reference is None:
            checks.append(Check(name, "max_increase", True, f"skipped: no {limits.reference} perplexity to compare with",
                                skipped=True))
        else:
            increase = value / reference - 1
            shown = ("+" if increase >= 0 else "") + shown_against(increase * 100, limits.max_increase * 100)
            checks.append(Check(name, "max_increase", within_limit(increase, limits.max_increase),
                                f"perplexity {value:.3f} vs {limits.reference} {reference:.3f}: {shown}% "
                                f"(limit +{limits.max_increase * 100:g}%)"))
    if limits.min_greedy_agreement is not None:
        checks.append(_greedy_agreement_check(row, limits.min_greedy_agreement))
    return checks


def _greedy_agreement_check(row: dict[str, Any], limit: float) -> Check:
    """min_greedy_agreement on the row's token_agreement with fp32. A row without one is listed as skipped (never a
    silent pass, never left out): the fp32 model is its own reference, and only the pipeline's bench stage compares a
    quantized model's greedy tokens with fp32's (a device's `edgekd bench` of one bundle has no fp32 to compare with)."""
    name, agreement = row["artifact"], row.get("token_agreement")
    if agreement is not None:
        return Check(name, "min_greedy_agreement", at_least(agreement, limit),
                     f"greedy agreement with fp32 {shown_against(agreement, limit, 3)} (limit {limit:g})")
    if row.get("precision") == "fp32":
        why = "the fp32 model's greedy tokens are fp32's by construction"
    else:
        why = "no greedy agreement with fp32 in the report (the pipeline's bench stage measures it); gate the run's report.json"
    return Check(name, "min_greedy_agreement", True, f"skipped: {why}", skipped=True)


def fidelity_checks(name: str, numbers: dict[str, Any], limits: Thresholds) -> list[Check]:
    """min_cosine and min_sqnr_db on a row's fidelity to the fp32 reference (its worst output)."""
    checks = []
    for key, field, unit in (("min_cosine", "cosine", ""), ("min_sqnr_db", "sqnr_db", " dB")):
        limit = getattr(limits, key)
        if limit is None:
            continue
        value = numbers.get(field)
        if value is None:  # unverifiable is not a pass
            checks.append(Check(name, key, False, f"no {field} against fp32 in the report; bench it with this edgekd"))
        else:
            checks.append(Check(name, key, at_least(value, limit),
                                f"{field} {shown_against(value, limit, 4, 'g')}{unit} vs fp32 (limit {limit:g}{unit})"))
    return checks


def _batch1(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """A row's batch-1 latency stats (p50 and per-round p50s), None when it has none."""
    return ((row or {}).get("latency") or {}).get("batch1")


def _speedup_check(name: str, latency: dict[str, Any], baseline_latency: dict[str, Any], min_speedup: float,
                   from_a_bundle: bool = False) -> Check:
    """min_speedup on device.noise.judged_speedup of the row's batch-1 latency over fp32's: the paired rounds' median
    where both carry rounds, else the p50s' ratio."""
    judged = judged_speedup(latency, baseline_latency)
    if judged is None:
        # Unverifiable is not a pass: the gate must be able to show the speedup it promises.
        why = ("no fp32 latency in this report: this bundle holds the shipped model only (a bundle carries the fp32 model "
               "to time beside it when the pipeline's or the target profile's gate sets min_speedup: set it there and "
               "build the bundle again), or gate the speed-up on the run's report.json") if from_a_bundle \
            else "no fp32 latency in this report to compare with"
        return Check(name, "min_speedup", False, why)
    speedup, how = judged
    return Check(name, "min_speedup", at_least(speedup, min_speedup),
                 f"speedup {shown_against(speedup, min_speedup)}x over fp32, {how} (limit {min_speedup:g}x)")


def evaluate_report(report: dict[str, Any], limits: Thresholds, baseline: dict[str, Any] | None = None) -> list[Check]:
    """Checks for every shipped artifact in a report. A row that carries its own reference (measured on its own bundle's
    evaluation set: a language model's bundles) is judged against it, else against the report's."""
    metric = report.get("task_metric") or "top1"
    key = metric_spec(metric).key
    carried = [isinstance(row.get("reference"), dict) for row in report["rows"]]
    shared = None if all(carried) else reference_value(report, limits.reference, key, baseline)
    samples = report.get("eval_set", {}).get("samples")  # a baseline is only accepted on the same evaluation set
    checks = []
    fidelity = report.get("measured") == FIDELITY  # top-1 against the fp32 model's own top-1: the drop is disagreement
    for row, own in zip(report["rows"], carried, strict=True):
        if not row.get("shipped"):
            continue
        reference = _carried_reference(row, limits.reference, key) if own else shared
        fp32_p50 = _fp32_p50(report["rows"], row)
        tightened = _stricter_limits(limits, row.get("profile_gate"))
        row_checks = check_row(row, reference, fp32_p50, limits.model_copy(update=tightened) if tightened else limits,
                               samples, metric, _batch1(_fp32_row(report["rows"], row)))
        _name_profile_limits(row_checks, tightened, row.get("target"))
        if fidelity and _its_own_reference(report, row):
            row_checks = [_compared_with_itself(c) if c.threshold in ("max_drop", "max_metric_drop") else c for c in row_checks]
        for check in row_checks if fidelity else ():
            if check.threshold in ("max_drop", "max_metric_drop"):
                what = "top-1" if metric == "top1" else metric
                check.reason = f"{check.reason}; no labels: this is disagreement with the fp32 model's {what}"
        checks.extend(row_checks)
    return checks


def _carried_reference(row: dict[str, Any], name: str, key: str) -> float | None:
    """The reference value a language model's bundle row carries (measured on its own blocks on the build machine): its
    gate.reference's, or another the bundle records (reference_perplexities) when the gate names another reference."""
    carried = row["reference"]
    if carried.get("name") in (None, name):
        return carried.get(key)
    known = row.get("reference_perplexities")
    if isinstance(known, dict) and name in known:
        return known[name]
    if isinstance(known, dict):
        raise ArtifactError(f"row {row['artifact']}: its bundle records the {key} of {', '.join(known) or 'no reference'} "
                            f"only, not of {name}; give --reference one of them")
    raise ArtifactError(f"row {row['artifact']} carries the {key} of {carried.get('name')} (its bundle's gate.reference) "
                        f"only, not of {name}: give --reference {carried.get('name')}, or bench the bundle again with this "
                        "edgekd (its report then carries every reference the bundle records)")


def _fp32_row(rows: list[dict[str, Any]], row: dict[str, Any]) -> dict[str, Any] | None:
    """The fp32 row `row`'s speed-up is measured against: its target's, and of its own bundle where rows name one (two
    bundles of one target benched together, each carrying its fp32 reference)."""
    same = [r for r in rows if r["target"] == row["target"] and r["precision"] == "fp32"]
    own = [r for r in same if row.get("bundle") is not None and r.get("bundle") == row.get("bundle")]
    return next(iter(own or same), None)


def _fp32_p50(rows: list[dict[str, Any]], row: dict[str, Any]) -> float | None:
    """The p50 of _fp32_row."""
    fp32 = _fp32_row(rows, row)
    return fp32.get("p50_ms") if fp32 is not None else None


def stricter(limits: Thresholds, profile_gate: dict[str, Any] | None) -> Thresholds:
    """`limits` with a row's target profile's own limits where they are stricter (a lower max_drop or max_size_kb, a
    higher min_speedup): a profile's gate section counts for its device's rows, never loosens the gate."""
    update = _stricter_limits(limits, profile_gate)
    return limits.model_copy(update=update) if update else limits


def _stricter_limits(limits: Thresholds, profile_gate: dict[str, Any] | None) -> dict[str, float]:
    """The limits of a profile's gate section that are stricter than `limits`' (or set where they are not)."""
    picks = {"max_drop": min, "max_size_kb": min, "min_speedup": max}
    update = {}
    for key, value in (profile_gate or {}).items():
        if key in picks and isinstance(value, (int, float)) and not isinstance(value, bool):
            current = getattr(limits, key)
            if current is None or picks[key](current, value) != current:
                update[key] = value
    return update


def _name_profile_limits(checks: list[Check], tightened: dict[str, float], target: str | None) -> None:
    """A check whose limit is the target profile's, not the one asked for (`edgekd gate --max-drop 10` failing on a
    profile's 1 point), says so in its reason: "(limit 1 points, target myx86's gate.max_drop)"."""
    for check in checks:
        if check.threshold in tightened and not check.skipped:
            source = f"target {target}'s gate.{check.threshold}"
            check.reason = f"{check.reason[:-1]}, {source})" if check.reason.endswith(")") else f"{check.reason} ({source})"


def _its_own_reference(report: dict[str, Any], row: dict[str, Any]) -> bool:
    """Without labels, the bundle whose own top-1 served as the labels (`edgekd bench --images` of a folder without
    label names on one bundle, or on bundles without an fp32 one): its drop is 0 by construction."""
    eval_set = report.get("eval_set") or {}
    return bool(eval_set.get("reference_is_a_candidate")) and eval_set.get("reference") == row.get("artifact")


def _compared_with_itself(check: Check) -> Check:
    """A drop measured against the artifact itself checks nothing: counted as skipped, never as a pass."""
    return Check(check.artifact, check.threshold, True, "skipped: no labels, and this artifact is its own reference (agreement "
                 "1 by construction); bench it beside the fp32 bundle (a run folder), or give images in folders named as "
                 "the labels", skipped=True)


NOTHING_TO_CHECK = ("nothing to check: no shipped artifact has a measured accuracy, or every limit is null; run edgekd "
                    "bench on the device, or set a limit (or allow it: edgekd gate --allow-empty, or gate.allow_empty: "
                    "true in the pipeline file; edgekd ship writes RUN/edgekd.yaml)")


class GateResult(list):
    """The checks of one gate (a list, as before) with the verdict that counts skips apart."""

    def __init__(self, checks: list[Check], allow_empty: bool = False):
        super().__init__(checks)
        self.allow_empty = allow_empty

    @property
    def failed(self) -> int:
        return sum(not c.passed for c in self)

    @property
    def skipped(self) -> int:
        return sum(c.passed and c.skipped for c in self)

    @property
    def evaluated(self) -> int:
        return len(self) - self.skipped

    @property
    def passed(self) -> bool:
        return self.failed == 0 and (self.evaluated > 0 or self.allow_empty)

    @property
    def summary(self) -> str:
        """One line, e.g. `gate: PASS (2 passed, 3 skipped)`; with nothing evaluated it says why."""
        counts = ", ".join(f"{n} {word}" for n, word in ((self.failed, "failed"), (self.evaluated - self.failed, "passed"),
                                                         (self.skipped, "skipped")) if n or word == "passed")
        if self.evaluated == 0 and not self.allow_empty:
            return f"gate: FAIL ({NOTHING_TO_CHECK}; {counts})"
        return f"gate: {'PASS' if self.passed else 'FAIL'} ({counts})"


def gate_report(report: dict[str, Any], limits: Thresholds, baseline: dict[str, Any] | None = None) -> GateResult:
    """evaluate_report with its verdict: what the CLI, the API and the pipeline's gate stage all use."""
    return GateResult(evaluate_report(report, limits, baseline), limits.allow_empty)


def failed_reasons(checks: list) -> list[tuple[str, str]]:
    """(artifact, why) of every failed check, Check objects or their dicts as gate.json and a bench verdict record
    them: what the terminal, report.md and report.html say under a FAIL."""
    as_dicts = [c if isinstance(c, dict) else c.__dict__ for c in checks or []]
    return [(c["artifact"], c["reason"]) for c in as_dicts if not c.get("passed", True) and not c.get("skipped")]


def verdicts(checks: list[Check]) -> dict[str, str]:
    """Per artifact: FAIL if any of its checks failed, SKIP if every one was skipped (not measurable here: a TensorRT
    engine on a workstation; a table cell PASS for it claimed what no check measured), else PASS."""
    by_artifact: dict[str, list[Check]] = {}
    for check in checks:
        by_artifact.setdefault(check.artifact, []).append(check)
    return {artifact: "FAIL" if any(not c.passed for c in its) else "SKIP" if all(c.skipped for c in its) else "PASS"
            for artifact, its in by_artifact.items()}
