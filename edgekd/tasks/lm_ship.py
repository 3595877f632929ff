"""Stages 3-7 of a language model: export the student as one decoder with a KV cache, int8 per target, the
bundle per target (model, tokenizer.json, manifest), bench (perplexity, torch-free generation), and the gate on
perplexity.

Targets are onnxruntime's (x86-cpu, arm64-cpu and profiles with backend ort / ort-arm64), which ship the ONNX
decoder (int8: dynamic or MatMulNBits), and OpenVINO's (intel-cpu, backend openvino), which ship it as IR
(.xml + .bin; int8: NNCF weight compression ov_int8 / ov_int4). Which model a target ships is chosen on the
validation split (the quantized one when its perplexity is within gate.max_increase of the target's fp32 model's
and, where this machine can time the target, it decodes no slower; else fp32); bench and the gate then measure
on the test split. "int8" names the quantized candidate whatever its bits, as in the image pipeline's records.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from edgekd.core.errors import ConfigError, TargetError
from edgekd.core.fileio import read_json, write_json_atomic, write_text_atomic
from edgekd.pipeline.lm.config import LanguageModelConfig
from edgekd.pipeline.lm.layout import fp32_onnx, student_dir, teacher_dir, tokenizer_path
from edgekd.pipeline.lm.records import LMCompileRecord, LMQuantizeRecord, LMTeacherRecord
from edgekd.pipeline.records import read_record
from edgekd.pipeline.stage import StageOutput, TaskStep

REPORT = "lm-report.json"  # not report.json: that name is the image report's schema (edgekd.report/1)


def _profiles(config: LanguageModelConfig, base_dir: Path) -> dict:
    """The targets' profiles; a target whose backend runs no decoder (Backend.decoder_methods) is refused."""
    from edgekd.runtimes import get_backend, load_profile
    from edgekd.runtimes.registry import decoder_backends

    profiles = {name: load_profile(name, base_dir) for name in config.targets}
    for name, profile in profiles.items():
        if not get_backend(profile.backend).decoder_methods:
            raise TargetError(f"target {name}: language models run on onnxruntime or OpenVINO here (backends "
                              f"{', '.join(decoder_backends())}), and this profile's backend is {profile.backend}; "
                              "use x86-cpu, arm64-cpu or intel-cpu")
    return profiles


def _methods(config: LanguageModelConfig, base_dir: Path) -> dict[str, tuple[str, object]]:
    """Per target, its quantize method and profile; a method for no listed target's runtime, or OpenVINO or NNCF
    missing for an OpenVINO target, is a one-line error before any training."""
    from edgekd.runtimes import get_backend
    from edgekd.runtimes.registry import decoder_backends, runtime_of

    profiles = _profiles(config, base_dir)
    methods = {name: (config.quantize.method_for(name, profile.backend), profile) for name, profile in profiles.items()}
    method = config.quantize.method
    if method != "none" and not any(method in get_backend(p.backend).decoder_methods for p in profiles.values()):
        offers: dict[str, tuple[str, ...]] = {}  # runtime -> its methods (ort and ort-arm64 share onnxruntime's)
        for name in decoder_backends():
            offers.setdefault(runtime_of(name), get_backend(name).decoder_methods)
        raise ConfigError(f"quantize.method {method}: not a method for any of the targets' runtimes "
                          f"({', '.join(sorted({p.backend for p in profiles.values()}))}); use "
                          + "; ".join(f"{', '.join(m)} for {runtime} targets" for runtime, m in offers.items()))
    openvino = {name: (m, p) for name, (m, p) in methods.items() if runtime_of(p.backend) == "openvino"}
    if openvino:
        get_backend(next(iter(openvino.values()))[1].backend).require()
        if any(m != "none" for m, _ in openvino.values()) and importlib.util.find_spec("nncf") is None:
            raise TargetError("quantize: ov_int8 / ov_int4 compress weights with NNCF, which is not installed; "
                              "pip install nncf, or use quantize.method none for the OpenVINO targets")
    return methods


class LMExportStep(TaskStep):
    """Stage 3: the student as one ONNX decoder with past_key_values in and present out, checked against PyTorch."""

    name = "export"
    sections = ("export",)

    def run(self) -> StageOutput:
        from edgekd.lm.export import check_against_torch, export_decoder
        from edgekd.lm.models import load_pretrained

        student = load_pretrained(student_dir(self.ctx))
        path = export_decoder(student, fp32_onnx(self.ctx), opset=self.ctx.cfg.export.opset)
        worst = check_against_torch(student, path)
        return StageOutput([path], {"parity_max_abs_diff": worst, "opset": self.ctx.cfg.export.opset,
                                    "input": {"name": "input_ids", "shape": ["batch_size", "sequence_length"], "dtype": "int64"}},
                           inputs=sorted(student_dir(self.ctx).iterdir()))


class LMQuantizeStep(TaskStep):
    """Stage 4: per target, the quantized decoder quantize.method / quantize.per_target ask for. onnxruntime targets:
    dynamic int8 (7-bit weights where this CPU's int8 kernels saturate, quant/host.py) or MatMulNBits. OpenVINO
    targets: the decoder as fp32 IR (their fp32 candidate, made even with method none) and NNCF-compressed IR."""

    name = "quantize"
    sections = ("quantize", "targets")

    @classmethod
    def check(cls, config: LanguageModelConfig, base_dir: Path) -> None:
        _methods(config, base_dir)

    def run(self) -> StageOutput:
        made: dict[Path, list[Path]] = {}  # each file made once, whichever targets share it: main file -> its files
        per_target = {}
        for name, (method, profile) in _methods(self.ctx.cfg, self.ctx.base_dir).items():
            if method != "none" and "int8" not in profile.precisions:
                method = "none"
            make = self._openvino if _runtime(profile) == "openvino" else self._onnxruntime
            per_target[name] = make(name, method, profile, made)
        outputs = [path for files in made.values() for path in files]
        return StageOutput(outputs, inputs=[fp32_onnx(self.ctx)], record=LMQuantizeRecord(per_target))

    def _onnxruntime(self, name: str, method: str, profile, made: dict) -> dict:
        from edgekd.lm.quantize import quantize_decoder
        from edgekd.quant.host import recipe_for_host

        ctx, cfg = self.ctx, self.ctx.cfg
        if method == "none":
            return {"method": "none", "runtime": _runtime(profile)}
        reduce_range, note = False, None
        if method == "dynamic":
            choice = recipe_for_host(profile.quantization, cfg.quantize.adapt_to_host, name)
            reduce_range, note = choice.recipe.reduce_range, choice.note
        path = ctx.stage_dir("quantize") / f"student-{method}{'-7bit' if reduce_range else ''}.onnx"
        if path not in made:
            made[path] = [quantize_decoder(fp32_onnx(ctx), path, method, reduce_range=reduce_range, block_size=cfg.quantize.block_size)]
        return {"method": method, "runtime": _runtime(profile), "reduce_range": reduce_range, "file": path.name,
                "bytes": path.stat().st_size, **({"host_note": note} if note else {})}

    def _openvino(self, name: str, method: str, profile, made: dict) -> dict:
        from edgekd.lm.openvino import Compression, convert_decoder
        from edgekd.runtimes import get_backend

        ctx, options, backend = self.ctx, self.ctx.cfg.quantize.openvino, get_backend(profile.backend)
        fp32 = ctx.stage_dir("quantize") / "student-fp32-ov.xml"
        if fp32 not in made:
            made[fp32] = backend.decoder_files(convert_decoder(fp32_onnx(ctx), fp32))
        entry = {"method": method, "runtime": _runtime(profile), "fp32_file": fp32.name}
        if method == "none":
            return entry
        path = ctx.stage_dir("quantize") / f"student-{method}.xml"
        compression = Compression(options.int4_mode, options.group_size, options.ratio)
        if path not in made:
            made[path] = backend.decoder_files(convert_decoder(fp32_onnx(ctx), path, method, compression))
        settings = {"mode": "int8_asym"} if method == "ov_int8" else \
            {"mode": f"int4_{options.int4_mode}", "group_size": options.group_size, "ratio": options.ratio}
        return {**entry, **settings, "file": path.name, "bytes": sum(p.stat().st_size for p in made[path])}


SPEED_PROMPTS, SPEED_TOKENS = 5, 32  # the compile stage's quick speed check on validation prompts


class LMCompileStep(TaskStep):
    """Stage 5: per target, the model to ship in bundle/<target>/ with tokenizer.json: int8 when its val perplexity
    is within gate.max_increase of the target's fp32 model's (the ONNX decoder, or for OpenVINO its fp32 IR) and,
    where this machine can time the target, it decodes no slower than that fp32 model (as for images: never slower
    than the fp32 baseline); else fp32."""

    name = "compile"
    sections = ("targets", "gate", "bench")  # bench: the bundle records the bench settings and carries device_blocks

    def run(self) -> StageOutput:
        from edgekd.lang.generate import load_decoder
        from edgekd.lang.lm_tokenizer import LMTokenizer
        from edgekd.lang.perplexity import onnx_perplexity

        ctx, cfg = self.ctx, self.ctx.cfg
        tokenizer = LMTokenizer(tokenizer_path(ctx))
        val = ctx.dataset.blocks(tokenizer.path, "val")[: cfg.data.val_blocks]
        quantized = read_record(ctx.manifest, LMQuantizeRecord)
        files = {name: self._files(quantized, name) for name in cfg.targets}
        # The exported fp32 decoder always: the run's reference, whatever the targets ship.
        val_perplexity = {path: onnx_perplexity(load_decoder(path), val)
                          for path in dict.fromkeys([fp32_onnx(ctx), *(p for pair in files.values() for p in pair.values())])}
        speed = self._speeds(files, val)
        outputs, targets = [], {}
        held_out = self._held_out(tokenizer)
        for name in cfg.targets:
            candidates = {kind: {"path": path, "val_perplexity": val_perplexity[path]} for kind, path in files[name].items()}
            if "int8" in candidates and _measurable(cfg, ctx.base_dir, name) and all(p in speed for p in files[name].values()):
                for kind, path in files[name].items():
                    candidates[kind].update(speed[path])
            limit = _limit(candidates["fp32"]["val_perplexity"], cfg.gate.max_increase)
            chosen, reason = choose_lm(candidates, limit)
            outputs += self._bundle(name, chosen, candidates[chosen], quantized.targets[name], tokenizer, held_out)
            targets[name] = {"chosen": chosen, "bundle": f"bundle/{name}", "runtime": _target_runtime(cfg, ctx.base_dir, name),
                             "candidates": {c: {"file": str(v["path"].relative_to(ctx.run_dir)), "val_perplexity": round(v["val_perplexity"], 4),
                                                **({"val_tokens_per_second": v["tokens_per_second"]} if "tokens_per_second" in v else {}),
                                                **({"speed_vs_fp32": v["vs_fp32"]} if "vs_fp32" in v else {})}
                                            for c, v in candidates.items()},
                             "reason": reason}
        return StageOutput(outputs, {"fp32_val_perplexity": round(val_perplexity[fp32_onnx(ctx)], 4)}, record=LMCompileRecord(targets))

    def _files(self, quantized: LMQuantizeRecord, target: str) -> dict[str, Path]:
        """The target's candidates: fp32 (the ONNX decoder, or OpenVINO's fp32 IR) and int8 where it has one."""
        folder = self.ctx.stage_dir("quantize")
        fp32 = folder / quantized.fp32_file(target) if quantized.fp32_file(target) else fp32_onnx(self.ctx)
        return {"fp32": fp32} | ({"int8": folder / quantized.int8_file(target)} if quantized.int8_file(target) else {})

    def _speeds(self, files: dict[str, dict[str, Path]], val) -> dict[Path, dict]:
        """Decode tokens/s of the candidates of each target this machine can time and that has a choice to make, on a
        few validation prompts, all interleaved (edgekd.lang.generation_bench)."""
        from edgekd.lang.generate import load_decoder
        from edgekd.lang.generation_bench import generation_speed
        from edgekd.lm.dataset import prompts

        cfg = self.ctx.cfg
        timed = list(dict.fromkeys(path for name, pair in files.items() if "int8" in pair and _measurable(cfg, self.ctx.base_dir, name)
                                   for path in pair.values()))
        if not timed:
            return {}
        new_tokens = min(SPEED_TOKENS, cfg.data.context - cfg.bench.prompt_tokens)
        measured = generation_speed({p.name: load_decoder(p) for p in timed}, prompts(val, SPEED_PROMPTS, cfg.bench.prompt_tokens),
                                    new_tokens, per_generation=True)
        return {path: {"tokens_per_second": measured[path.name]["tokens_per_second"],
                       "tokens_per_second_each": measured[path.name]["tokens_per_second_each"]} for path in timed}

    def _bundle(self, target: str, precision: str, candidate: dict, quantized: dict, tokenizer, held_out: dict) -> list[Path]:
        from edgekd.device.lm_bundle import write_lm_bundle

        cfg = self.ctx.cfg
        info = {"task": "language-model", "target": target, "precision": precision, "runtime": _target_runtime(cfg, self.ctx.base_dir, target),
                "quantization": quantized if precision == "int8" else {"method": "none"},
                "context": cfg.data.context, "eos_id": tokenizer.eos_id, "vocab_size": tokenizer.vocab_size,
                "val_perplexity": round(candidate["val_perplexity"], 4),
                # what `edgekd bench` on the device measures and gates by: the pipeline's own settings
                "gate": {"max_increase": cfg.gate.max_increase, "reference": cfg.gate.reference},
                "bench": {"prompts": cfg.bench.prompts, "prompt_tokens": cfg.bench.prompt_tokens,
                          "new_tokens": cfg.bench.new_tokens, "rounds": cfg.bench.rounds},
                **({"eval": held_out["eval"]} if held_out["blocks"] is not None else {})}
        return write_lm_bundle(self.ctx.layout.bundle_dir(target), candidate["path"], tokenizer.path, info, held_out["blocks"])

    def _held_out(self, tokenizer) -> dict:
        """The test blocks every bundle carries (bench.device_blocks, spread over those bench measures) and the
        references' perplexities on exactly those blocks, so the device's gate compares like with like."""
        from edgekd.lang.generate import OnnxDecoder
        from edgekd.lang.perplexity import onnx_perplexity
        from edgekd.lm.models import load_pretrained
        from edgekd.lm.training import torch_perplexity
        from edgekd.lm.dataset import device_blocks

        ctx, count = self.ctx, self.ctx.cfg.bench.device_blocks
        if count == 0:
            return {"blocks": None}
        # among the blocks bench measures (data.test_blocks): a bundle covering them all reproduces bench's perplexity
        blocks = device_blocks(ctx.dataset.blocks(tokenizer.path, "test")[: ctx.cfg.data.test_blocks or None], count)
        references = {"student_fp32": round(onnx_perplexity(OnnxDecoder(fp32_onnx(ctx)), blocks), 4),
                      "teacher": round(torch_perplexity(load_pretrained(teacher_dir(ctx)), blocks), 4)}
        return {"blocks": blocks, "eval": {"file": "eval_blocks.npy", "split": "test", "blocks": int(len(blocks)),
                                           "block_tokens": int(blocks.shape[1]), "reference_perplexity": references}}


def _limit(fp32_perplexity: float, max_increase) -> float:
    return fp32_perplexity * (1 + max_increase) if max_increase is not None else float("inf")


def _runtime(profile) -> str:
    """The runtime a target's models run on ('onnxruntime', 'openvino'): its backend's, from the one table."""
    from edgekd.runtimes.registry import runtime_of

    return runtime_of(profile.backend)


def _target_runtime(cfg, base_dir: Path, target: str) -> str:
    from edgekd.runtimes import load_profile

    return _runtime(load_profile(target, base_dir))


class LMBenchStep(TaskStep):
    """Stage 6: test perplexity of every model, torch-free greedy generation (TTFT, p50/p99, tokens/s) and greedy
    agreement with the fp32 student; lm-report.json and report.md."""

    name = "bench"
    sections = ("bench",)

    def run(self) -> StageOutput:
        from edgekd.core.environment import describe
        from edgekd.lang.generate import load_decoder
        from edgekd.lang.generation_bench import generation_speed, greedy_agreement
        from edgekd.lang.perplexity import onnx_perplexity
        from edgekd.lm.dataset import prompts

        ctx, cfg = self.ctx, self.ctx.cfg
        test = ctx.dataset.blocks(tokenizer_path(ctx), "test")[: cfg.data.test_blocks or None]
        held_out = prompts(test, cfg.bench.prompts, cfg.bench.prompt_tokens)
        compiled = read_record(ctx.manifest, LMCompileRecord)
        # One decoder per file: targets sharing a file are measured once; timed where a target is measurable here. Every
        # int8 file is scored (also where fp32 ships), and each shipped file (OpenVINO's fp32 IR among them).
        shipped = {t: compiled.file(t, compiled.chosen(t)) for t in cfg.targets}
        files = [compiled.int8_file(t) for t in cfg.targets if compiled.int8_file(t)] + list(shipped.values())
        paths = {"fp32": fp32_onnx(ctx)} | {self._model_name(file): ctx.run_dir / file for file in files}
        model_of = {t: self._model_name(shipped[t]) for t in cfg.targets}
        decoders = {name: load_decoder(path) for name, path in paths.items()}
        perplexity = {name: onnx_perplexity(decoder, test) for name, decoder in decoders.items()}
        measurable = {t: _measurable(cfg, ctx.base_dir, t) for t in cfg.targets}
        timed = {"fp32"} | {model_of[t] for t in cfg.targets if measurable[t]}
        speed = generation_speed({n: d for n, d in decoders.items() if n in timed}, held_out, cfg.bench.new_tokens, cfg.bench.rounds)
        agreement = {n: greedy_agreement(decoders["fp32"], d, held_out, cfg.bench.new_tokens) for n, d in decoders.items() if n != "fp32"}
        teacher = read_record(ctx.manifest, LMTeacherRecord)
        report = {"format": "edgekd.lm-report/1", "test_blocks": len(test), "test_tokens": int(test.size),
                  "prompts": len(held_out), "new_tokens": cfg.bench.new_tokens,
                  "references": {"teacher": {"perplexity": teacher.test_perplexity, "params": teacher.params},
                                 "student_fp32": {"perplexity": round(perplexity["fp32"], 4), **speed["fp32"]}},
                  "rows": [_row(t, compiled.chosen(t), model_of[t], compiled.targets[t]["runtime"], perplexity, speed if measurable[t] else {}, agreement)
                           for t in cfg.targets],
                  "environment": describe()}
        outputs = [write_json_atomic(ctx.run_dir / REPORT, report), write_text_atomic(ctx.run_dir / "report.md", markdown(report))]
        return StageOutput(outputs, {"rows": report["rows"], "references": report["references"]})

    def _model_name(self, file: str) -> str:
        """A file's name in the report: fp32 for the exported decoder, else its stem (student-ov_int8, ...)."""
        return "fp32" if self.ctx.run_dir / file == fp32_onnx(self.ctx) else Path(file).stem


def _row(target: str, chosen: str, model: str, runtime: str, perplexity: dict, speed: dict, agreement: dict) -> dict:
    return {"target": target, "artifact": f"{target}/{chosen}", "precision": chosen, "model": model,
            "runtime": runtime,
            "perplexity": round(perplexity[model], 4),
            **(speed.get(model) or {"tokens_per_second": None, "speed_note": "time it on the device (latency not measurable here)"}),
            **({"greedy_agreement_with_fp32": agreement[model]} if model in agreement else {})}


def choose_lm(candidates: dict, limit: float) -> tuple[str, str]:
    """(chosen, reason) for one target (the speed comparison, when made, lands in candidates["int8"]["vs_fp32"]):
    int8 when its val perplexity is within `limit` and, where both were timed here, it decodes faster than fp32
    beyond noise (device.noise.compare_rates on the prompt-by-prompt pairs: the one rule for "faster" the image
    pipeline's selection uses). Inside the noise band fp32, the simpler model, ships
    and the reason says "within noise". The reason quotes the medians the record keeps (val_tokens_per_second)."""
    from edgekd.device.noise import FASTER, compare_rates, compare_speed

    if "int8" not in candidates:
        return "fp32", "fp32: no int8 model for this target (quantize.method none, or the profile has no int8)"
    int8, fp32 = candidates["int8"], candidates["fp32"]
    if int8["val_perplexity"] > limit:
        return "fp32", f"fp32: int8 val perplexity {int8['val_perplexity']:.3f} over the limit {limit:.3f}"
    quality = f"int8 val perplexity {int8['val_perplexity']:.3f} within the limit {limit:.3f}"
    if not int8.get("tokens_per_second") or not fp32.get("tokens_per_second"):
        return "int8", f"int8: {quality} (speed: time it on the device)"
    comparison = compare_rates(int8.get("tokens_per_second_each") or [], fp32.get("tokens_per_second_each") or []) or \
        compare_speed({"p50_ms": 1 / int8["tokens_per_second"]}, {"p50_ms": 1 / fp32["tokens_per_second"]})  # no pairs
    int8["vs_fp32"] = comparison.to_json()
    rates = f"{int8['tokens_per_second']} vs fp32 {fp32['tokens_per_second']} tokens/s on val prompts"
    how = f"{rates}; int8 {comparison.describe('fp32')}"
    if comparison.outcome == FASTER:
        return "int8", f"int8: {quality}, {how}"
    return "fp32", f"fp32: {quality}, but not faster: {how}"


def _measurable(cfg, base_dir: Path, target: str) -> bool:
    from edgekd.runtimes import load_profile

    return load_profile(target, base_dir).latency_measurable_off_device


def markdown(report: dict) -> str:
    refs = report["references"]
    lines = ["# Language model report", "", f"Test perplexity on {report['test_blocks']} blocks ({report['test_tokens']} tokens); "
             f"greedy generation of {report['new_tokens']} tokens from {report['prompts']} held-out prompts, on this machine's CPU "
             "(each target's runtime: onnxruntime or OpenVINO), batch 1.", "",
             "| artifact | perplexity | tokens/s | TTFT ms | p50 / p99 ms | greedy agreement with fp32 | gate |", "|---|---|---|---|---|---|---|",
             f"| teacher (PyTorch) | {refs['teacher']['perplexity']} | | | | | |",
             f"| student fp32 (ONNX) | {refs['student_fp32']['perplexity']} | {refs['student_fp32'].get('tokens_per_second')} | "
             f"{refs['student_fp32'].get('time_to_first_token_ms')} | {refs['student_fp32'].get('per_token_p50_ms')} / "
             f"{refs['student_fp32'].get('per_token_p99_ms')} | | |"]
    for row in report["rows"]:
        agree = row.get("greedy_agreement_with_fp32", {}).get("token_agreement", "")
        lines.append(f"| {row['artifact']} | {row['perplexity']} | {row.get('tokens_per_second') or row.get('speed_note')} | "
                     f"{row.get('time_to_first_token_ms', '')} | {row.get('per_token_p50_ms', '')} / {row.get('per_token_p99_ms', '')} | "
                     f"{agree} | {row.get('gate', '')} |")
    return "\n".join(lines) + "\n"


class LMGateStep(TaskStep):
    """Stage 7: each target's shipped model against the reference: perplexity at most (1 + gate.max_increase) x
    the reference's (and greedy agreement at least gate.min_greedy_agreement when set)."""

    name = "gate"
    sections = ("gate",)

    def run(self) -> StageOutput:
        ctx, gate = self.ctx, self.ctx.cfg.gate
        report = read_json(ctx.run_dir / REPORT)
        reference = report["references"][gate.reference]["perplexity"]
        if reference is None:
            raise ConfigError(f"gate.reference {gate.reference}: no perplexity of it in {REPORT}; use student_fp32")
        checks = []
        for row in report["rows"]:
            checks += _checks(row, reference, gate)
            row["gate"] = "PASS" if all(c["passed"] for c in checks if c["artifact"] == row["artifact"]) else "FAIL"
        failed = sum(not c["passed"] for c in checks)
        passed = bool(checks) and failed == 0  # no check at all (max_increase null and no agreement limit) is no pass
        verdict = {"passed": passed, "summary": f"gate: {'PASS' if passed else 'FAIL'} ({failed} failed, {len(checks) - failed} passed)",
                   "checks": checks}
        # bench's lm-report.json and report.md stay as bench wrote them (--resume compares them); the report with the
        # gate column is gate-summary.md.
        summary = markdown(report) + "\n" + "\n".join(f"- {c['artifact']} {c['threshold']}: {'PASS' if c['passed'] else 'FAIL'}, "
                                                      f"{c['reason']}" for c in checks) + "\n"
        outputs = [write_json_atomic(ctx.layout.gate_json, verdict), write_text_atomic(ctx.layout.gate_summary, summary)]
        return StageOutput(outputs, verdict, inputs=[ctx.run_dir / REPORT])


def _checks(row: dict, reference: float, gate) -> list[dict]:
    checks = []
    if gate.max_increase is not None:
        increase = row["perplexity"] / reference - 1
        checks.append({"artifact": row["artifact"], "threshold": "max_increase", "passed": increase <= gate.max_increase, "skipped": False,
                       "reason": f"perplexity {row['perplexity']:.3f} vs {gate.reference} {reference:.3f}: {increase:+.2%} "
                                 f"(limit +{gate.max_increase:.0%})"})
    agreement = row.get("greedy_agreement_with_fp32", {}).get("token_agreement")
    if gate.min_greedy_agreement is not None and agreement is not None:
        checks.append({"artifact": row["artifact"], "threshold": "min_greedy_agreement", "passed": agreement >= gate.min_greedy_agreement,
                       "skipped": False, "reason": f"greedy agreement with fp32 {agreement:.3f} (limit {gate.min_greedy_agreement:g})"})
    return checks
