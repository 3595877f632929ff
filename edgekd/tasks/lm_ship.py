"""Stages 3-6 of a language model: export the student as one decoder with a KV cache, int8 per target, the
bundle per target (edgekd.bundle/1: model, tokenizer.json, eval.npz, manifest) and bench (perplexity, torch-free
generation) into report.json (edgekd.report/1), which the generic gate stage judges on perplexity.

Targets are onnxruntime's (x86-cpu, arm64-cpu and profiles with backend ort / ort-arm64), which ship the ONNX
decoder (int8: dynamic or MatMulNBits), and OpenVINO's (intel-cpu, backend openvino), which ship it as IR
(.xml + .bin; int8: NNCF weight compression ov_int8 / ov_int4). Which model a target ships is chosen on the
validation split (the quantized one when its perplexity is within gate.max_increase of the target's fp32 model's
and, where this machine can time the target, it decodes faster beyond noise: pipeline/selection.choose; else fp32);
bench and the gate then measure on the test split. "int8" names the quantized candidate whatever its bits, as in the image pipeline's records;
the report's rows carry its method and settings (quantization, quantization_settings: weight_bits, group_size, ...).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from edgekd.core.errors import ConfigError, StageError
from edgekd.pipeline.records import CompileRecord, TargetBuild, read_record
from edgekd.pipeline.selection import choose, increase_rule
from edgekd.pipeline.stage import StageOutput, TaskStep
from edgekd.runtimes import get_backend, load_profile
from edgekd.runtimes.decoder import quantization_settings
from edgekd.runtimes.registry import runtime_of
from edgekd.tasks.lm import LanguageModelConfig, student_dir, teacher_dir, tokenizer_path


class LMExportStep(TaskStep):
    """Stage 3: the student as one ONNX decoder with past_key_values in and present out, checked against PyTorch."""

    name = "export"
    sections = ("export",)

    def run(self) -> StageOutput:
        from edgekd.lm.export import check_against_torch, export_decoder
        from edgekd.lm.models import load_pretrained

        student = load_pretrained(student_dir(self.ctx))
        path = export_decoder(student, self.ctx.layout.fp32_onnx, opset=self.ctx.cfg.export.opset)
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
        methods = config.quantize.plan(config.targets, base_dir)
        group_size, width = config.quantize.openvino.group_size, config.student.width
        if group_size and width % group_size and any(method == "ov_int4" for method, _profile in methods.values()):
            # NNCF groups each weight's input channels (the width, or 4 x it): said before training, not at this stage
            raise ConfigError(f"quantize.openvino.group_size {group_size}: the student's width {width} (student.width) is "
                              f"not a multiple of it, so NNCF cannot group its weights; use a divisor of {width}, or "
                              "leave it out (the largest of 128, 64, 32, 16 that divides the width)")

    def run(self) -> StageOutput:
        made: dict[Path, list[Path]] = {}  # each file made once, whichever targets share it: main file -> its files
        per_target = {}
        for name, (method, profile) in self.ctx.cfg.quantize.plan(self.ctx.cfg.targets, self.ctx.base_dir).items():
            options, note = self.ctx.cfg.quantize.options_for(name, profile, method)
            entry = get_backend(profile.backend).quantize_decoder(self.ctx.layout.fp32_onnx, self.ctx.stage_dir("quantize"),
                                                                 method, options, made)
            per_target[name] = {**entry, **({"host_note": note} if note and entry.get("file") else {})}
        outputs = [path for files in made.values() for path in files]
        return StageOutput(outputs, {"targets": per_target}, inputs=[self.ctx.layout.fp32_onnx])  # read by compile (_files)


SPEED_PROMPTS, SPEED_TOKENS = 5, 32  # the compile stage's quick speed check on validation prompts


class LMCompileStep(TaskStep):
    """Stage 5: per target, the model to ship in bundle/<target>/ with tokenizer.json: int8 when its val perplexity
    is within gate.max_increase of the target's fp32 model's (the ONNX decoder, or for OpenVINO its fp32 IR) and,
    where this machine can time the target, it decodes no slower than that fp32 model (as for images: never slower
    than the fp32 baseline); else fp32."""

    name = "compile"
    sections = ("targets", "gate", "bench")  # bench: the bundle records the bench settings and carries device_blocks

    def run(self) -> StageOutput:
        from edgekd.lang.lm_tokenizer import LMTokenizer
        from edgekd.lang.perplexity import onnx_perplexity
        from edgekd.runtimes.registry import load_decoder

        ctx, cfg = self.ctx, self.ctx.cfg
        tokenizer = LMTokenizer(tokenizer_path(ctx))
        val = ctx.dataset.blocks(tokenizer.path, "val")[: cfg.data.val_blocks]
        quantized = ctx.manifest.metrics("quantize").get("targets") or {}
        files = {name: self._files(quantized, name) for name in cfg.targets}
        # The exported fp32 decoder always: the run's reference, whatever the targets ship.
        val_perplexity = {path: onnx_perplexity(load_decoder(path), val)
                          for path in dict.fromkeys([ctx.layout.fp32_onnx, *(p for pair in files.values() for p in pair.values())])}
        speed = self._speeds(files, val)
        outputs, targets = [], {}
        held_out = self._held_out(tokenizer)
        for name in cfg.targets:
            # int8 first: an untimed target ships the first candidate within the limit (pipeline/selection.choose)
            timed = _measurable(cfg, ctx.base_dir, name) and all(p in speed for p in files[name].values())
            rows = [{"name": kind, "precision": kind, "path": str(path.relative_to(ctx.run_dir)),
                     "val_perplexity": round(val_perplexity[path], 4), **(speed[path] if timed else {})}
                    for kind, path in sorted(files[name].items(), key=lambda item: item[0] != "int8")]
            max_increase = cfg.gate.max_increase
            limit = val_perplexity[files[name]["fp32"]] * (1 + max_increase) if max_increase is not None else float("inf")
            chosen = rows[choose(rows, increase_rule(limit, source="gate.max_increase"))]
            outputs += self._bundle(name, chosen["name"], files[name][chosen["name"]], chosen["val_perplexity"],
                                    quantized[name], tokenizer, held_out)
            backend = load_profile(name, ctx.base_dir).backend
            targets[name] = TargetBuild(backend, chosen["name"], chosen["precision"], rows, f"bundle/{name}")
        return StageOutput(outputs, {"fp32_val_perplexity": round(val_perplexity[ctx.layout.fp32_onnx], 4)}, record=CompileRecord(targets))

    def _files(self, quantized: dict, target: str) -> dict[str, Path]:
        """The target's candidates: fp32 (the ONNX decoder, or OpenVINO's fp32 IR, fp32_file) and int8 where it has one
        (the quantize stage's entry for the target: Backend.quantize_decoder)."""
        folder, entry = self.ctx.stage_dir("quantize"), quantized.get(target, {})
        fp32 = folder / entry["fp32_file"] if entry.get("fp32_file") else self.ctx.layout.fp32_onnx
        return {"fp32": fp32} | ({"int8": folder / entry["file"]} if entry.get("method", "none") != "none" else {})

    def _speeds(self, files: dict[str, dict[str, Path]], val) -> dict[Path, dict]:
        """Decode tokens/s of the candidates of each target this machine can time and that has a choice to make, on a
        few validation prompts, all interleaved (edgekd.lang.generation_bench)."""
        from edgekd.lang.generation_bench import generation_speed
        from edgekd.lm.dataset import prompts
        from edgekd.runtimes.registry import load_decoder

        cfg = self.ctx.cfg
        timed = list(dict.fromkeys(path for name, pair in files.items() if "int8" in pair and _measurable(cfg, self.ctx.base_dir, name)
                                   for path in pair.values()))
        if not timed:
            return {}
        new_tokens = min(SPEED_TOKENS, cfg.data.context - cfg.bench.prompt_tokens)
        measured = generation_speed({p.name: load_decoder(p) for p in timed}, prompts(val, SPEED_PROMPTS, cfg.bench.prompt_tokens),
                                    new_tokens, per_generation=True)
        # as latencies per token, so that selection's one rule for "faster" (device.noise.compare_speed) pairs them
        return {path: {"val_tokens_per_second": measured[path.name]["tokens_per_second"],
                       "p50_ms": round(1000 / measured[path.name]["tokens_per_second"], 4),
                       "round_p50_ms": [1000 / rate for rate in measured[path.name]["tokens_per_second_each"]]} for path in timed}

    def _bundle(self, target: str, precision: str, model: Path, val_perplexity: float, quantized: dict, tokenizer,
                held_out: dict) -> list[Path]:
        """The image pipeline's bundle (edgekd.bundle/1, device/bundle.write_bundle): the decoder as model.onnx (or its
        IR, model.xml + model.bin), tokenizer.json, and eval.npz's input_ids the held-out blocks."""
        import shutil

        from edgekd.device.bundle import bundle_files, write_bundle
        from edgekd.runtimes.base import Artifact

        ctx, cfg = self.ctx, self.ctx.cfg
        name = load_profile(target, ctx.base_dir).backend
        backend = get_backend(name)
        root = ctx.stage_dir("compile") / target / precision
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        for source in backend.decoder_files(model):  # as a bundle names them (the .bin beside its .xml)
            shutil.copyfile(source, root / f"model{source.suffix}")
        artifact = Artifact(name, precision, root, f"model{model.suffix}", [p.name for p in sorted(root.iterdir())])
        info = {"run": cfg.name, "task": "language-model", "task_metric": "perplexity", "target": target, "precision": precision,
                "runtime": runtime_of(name), "quantization": quantized if precision == "int8" else {"method": "none"},
                "context": cfg.data.context, "eos_id": tokenizer.eos_id, "vocab_size": tokenizer.vocab_size,
                "val_perplexity": val_perplexity,
                # what `edgekd bench` on the device measures and gates by (gate_on_bench): the pipeline's own settings
                "gate": cfg.gate.model_dump(mode="json"), "gate_on_bench": True,
                "bench": {"prompts": cfg.bench.prompts, "prompt_tokens": cfg.bench.prompt_tokens,
                          "new_tokens": cfg.bench.new_tokens, "rounds": cfg.bench.rounds},
                **({"eval": held_out["eval"]} if held_out["eval"] else {})}
        bundle = write_bundle(ctx.layout.bundle_dir(target), artifact, {"input_ids": held_out["blocks"]}, held_out["blocks"],
                              None, info, extra_files={"tokenizer.json": tokenizer.path})
        return bundle_files(bundle)

    def _held_out(self, tokenizer) -> dict:
        """The test blocks every bundle carries (bench.device_blocks, spread over those bench measures) and the
        references' perplexities on exactly those blocks, so the device's gate compares like with like."""
        from edgekd.lang.perplexity import onnx_perplexity
        from edgekd.lm.dataset import device_blocks
        from edgekd.lm.models import load_pretrained
        from edgekd.lm.training import torch_perplexity
        from edgekd.runtimes.ort import OnnxDecoder

        ctx, count = self.ctx, self.ctx.cfg.bench.device_blocks
        if count == 0:  # no rows: the bundle carries no held-out blocks
            return {"blocks": np.zeros((0, ctx.cfg.data.context), np.int64), "eval": None}
        # among the blocks bench measures (data.test_blocks): a bundle covering them all reproduces bench's perplexity
        blocks = device_blocks(ctx.task.evaluation_set(ctx.dataset, ctx.cfg.data.test_blocks)[1], count)
        references = {"student_fp32": round(onnx_perplexity(OnnxDecoder(ctx.layout.fp32_onnx), blocks), 4),
                      "teacher": round(torch_perplexity(load_pretrained(teacher_dir(ctx)), blocks), 4)}
        return {"blocks": blocks, "eval": {"file": "eval.npz", "split": "test", "blocks": int(len(blocks)),
                                           "block_tokens": int(blocks.shape[1]), "reference_perplexity": references}}


class LMBenchStep(TaskStep):
    """Stage 6: test perplexity of every model, torch-free greedy generation (TTFT, p50/p99, tokens/s) and greedy
    agreement with the fp32 student; report.json (edgekd.report/1, task_metric perplexity), which the generic gate
    stage judges."""

    name = "bench"
    sections = ("bench",)

    def run(self) -> StageOutput:
        from edgekd.core.metrics import eval_set_hash
        from edgekd.device.report.build import generation_report, write_reports
        from edgekd.lang.generation_bench import generation_speed, greedy_agreement
        from edgekd.lang.perplexity import onnx_perplexity
        from edgekd.lm.dataset import prompts
        from edgekd.runtimes.registry import load_decoder

        ctx, cfg = self.ctx, self.ctx.cfg
        _, test = ctx.task.evaluation_set(ctx.dataset, cfg.data.test_blocks)
        held_out = prompts(test, cfg.bench.prompts, cfg.bench.prompt_tokens)
        compiled = _compiled(ctx)
        # One decoder per shipped file (OpenVINO's fp32 IR among them): targets sharing a file are measured once, timed
        # where a target is measurable here; the report has a row per target (the compile stage scored the rest).
        shipped = {t: _path_of(build, build.chosen) for t, build in compiled.items()}
        every = [row["path"] for build in compiled.values() for row in build.candidates]  # the shipped and the others
        paths = {"fp32": ctx.layout.fp32_onnx} | {self._model_name(file): ctx.run_dir / file for file in every}
        model_of = {t: self._model_name(shipped[t]) for t in cfg.targets}
        decoders = {name: load_decoder(path) for name, path in paths.items()}
        perplexity = {name: round(onnx_perplexity(decoder, test), 4) for name, decoder in decoders.items()}
        timed = {"fp32"} | {model_of[t] for t in cfg.targets if _measurable(cfg, ctx.base_dir, t)}
        speed = generation_speed({n: d for n, d in decoders.items() if n in timed}, held_out, cfg.bench.new_tokens, cfg.bench.rounds)
        agreement = {n: greedy_agreement(decoders["fp32"], decoders[n], held_out, cfg.bench.new_tokens)
                     for n in set(model_of.values()) - {"fp32"}}
        teacher = ctx.manifest.metrics("teachers")["teacher"]  # its size and test perplexity (lm_train.py)
        quantized = ctx.manifest.metrics("quantize")["targets"]  # each target's method, bits and grouping
        on_bundles = self._on_bundle_blocks(test, {model_of[t]: decoders[model_of[t]] for t in cfg.targets})
        rows = []
        for t, build in compiled.items():
            model = model_of[t]
            rows.append({"artifact": f"{t}/{build.chosen}", "target": t, "precision": build.chosen, "shipped": True, "model": model,
                         **quantization_of(quantized.get(t), build.chosen),
                         "verdict": _candidate(build, build.chosen).get("verdict", ""),
                         "runtime": runtime_of(build.backend), "perplexity": perplexity[model],
                         "bytes": sum(p.stat().st_size for p in get_backend(build.backend).decoder_files(paths[model])),
                         **(speed.get(model) or {"tokens_per_second": None, "not_timed": "time it on the device (edgekd bench)"}),
                         **({"token_agreement": agreement[model]["token_agreement"], "greedy_agreement_with_fp32": agreement[model]}
                            if model in agreement else {}),
                         **({"bundle_eval": {"perplexity": on_bundles["perplexity"][model]}} if on_bundles else {})})
            rows += [{**_not_shipped(t, build, row, ctx.run_dir, perplexity[self._model_name(row["path"])]),
                      **quantization_of(quantized.get(t), row["precision"])}
                     for row in build.candidates if row["name"] != build.chosen]
        references = {"teacher": {"perplexity": teacher["test_perplexity"], "params": teacher["params"]},
                      "student_fp32": {"perplexity": perplexity["fp32"], **speed["fp32"]}}
        eval_set = {"samples": len(test), "sha256": eval_set_hash({"input_ids": test}, test), "tokens": int(test.size)}
        report = generation_report(cfg.name, rows, references, eval_set, dict(cfg.gate), held_out, "the test split",
                                   cfg.bench.new_tokens, cfg.bench.rounds, {"mode": "greedy"}, None,
                                   ctx.manifest.metrics("teachers")["tokenizer"]["vocab_size"])
        distilled = ctx.manifest.metrics("distill")
        report["distill"] = {"mode": distilled.get("mode", "token"), "steps": distilled.get("steps")}  # report.md says it
        for note in report["warnings"]:
            if note.startswith("perplexity no better than guessing"):  # the terminal hears it now, not only the report
                warnings.warn(note, stacklevel=2)
        report["warnings"] += ctx.manifest.metrics("distill").get("student_warnings", [])  # said at stage 2 too
        if on_bundles:  # what `edgekd compare` pairs with `edgekd bench` of the bundles (device/report/compare.py)
            report["bundle_eval_set"] = on_bundles["eval_set"]
        # report.json only: the gate stage writes report.md and report.html with its verdicts (as for images)
        return StageOutput(write_reports(ctx.run_dir, report)[:1], {"rows": rows, "references": references})

    def _on_bundle_blocks(self, test: np.ndarray, shipped: dict) -> dict:
        """The shipped models' perplexity on the held-out blocks their bundles carry (bench.device_blocks of the test
        blocks), and that set's sha256 as `edgekd bench` computes it: a device's report measures those blocks only, so
        `edgekd compare` compares it with these numbers, not with the whole test split's. {} without device blocks."""
        from edgekd.core.metrics import eval_set_hash
        from edgekd.lang.perplexity import onnx_perplexity
        from edgekd.lm.dataset import device_blocks

        if self.ctx.cfg.bench.device_blocks == 0:
            return {}
        blocks = device_blocks(test, self.ctx.cfg.bench.device_blocks).astype(np.int64)  # as edgekd bench reads them
        return {"eval_set": {"samples": int(len(blocks)), "sha256": eval_set_hash({"input_ids": blocks}, blocks),
                             "tokens": int(blocks.size), "source": "the bundles' eval.npz (bench.device_blocks)"},
                "perplexity": {name: round(onnx_perplexity(decoder, blocks), 4) for name, decoder in shipped.items()}}

    def _model_name(self, file: str) -> str:
        """A file's name in the report: fp32 for the exported decoder, else its stem (student-ov_int8, ...)."""
        return "fp32" if self.ctx.run_dir / file == self.ctx.layout.fp32_onnx else Path(file).stem


def quantization_of(entry: dict | None, precision: str) -> dict:
    """A row's quantization method and, for int8 (the quantized candidate's name whatever its bits), the settings
    its target's quantize entry records (Backend.quantize_decoder): what the reports show beside the name."""
    if precision != "int8" or not entry or entry.get("method", "none") == "none":
        return {"quantization": "none"}
    return {"quantization": entry["method"], "quantization_settings": quantization_settings(entry)}


def _compiled(ctx) -> dict:
    """Per target, its TargetBuild (pipeline/records.py); a compile record from before the LM's was one is refused."""
    try:
        return read_record(ctx.manifest, CompileRecord).targets
    except (KeyError, TypeError):
        raise StageError("the compile stage's record predates this edgekd's (its candidates as selection rows); run the "
                         "last stages again: edgekd run CONFIG --out RUN --force --only compile --only bench --only gate") from None


def _path_of(build, name: str) -> str | None:
    """The file (relative to the run folder) of a target's candidate fp32 or int8, or None."""
    return _candidate(build, name).get("path")


def _candidate(build, name: str) -> dict:
    """A target's candidate row of the compile stage (with selection's verdict: why it was or was not shipped)."""
    return next((row for row in build.candidates if row["name"] == name), {})


def _not_shipped(target: str, build, candidate: dict, run_dir: Path, perplexity: float) -> dict:
    """A candidate the compile stage did not ship, as a report row: its verdict says why (every candidate has a row, as
    in the classifiers' reports), with its test perplexity; generation is timed for the shipped models only."""
    return {"artifact": f"{target}/{candidate['name']}", "target": target, "precision": candidate["precision"],
            "shipped": False, "runtime": runtime_of(build.backend), "perplexity": perplexity, "tokens_per_second": None,
            "bytes": sum(p.stat().st_size for p in get_backend(build.backend).decoder_files(run_dir / candidate["path"])),
            "verdict": candidate.get("verdict", ""),
            "not_timed": f"not shipped (validation perplexity {candidate['val_perplexity']}): generation is timed for "
                         "the shipped models"}


def _measurable(cfg, base_dir: Path, target: str) -> bool:
    from edgekd.runtimes.host_fit import timings_transfer

    return timings_transfer(load_profile(target, base_dir))
