"""`edgekd bench` on language-model bundles (edgekd.bundle/1, device/bundle.py; older edgekd.lm-bundle/1 ones through
device/lm_legacy.py), with numpy, onnxruntime and tokenizers only.

Per bundle: generation speed at batch 1 (time to first token, per-token p50/p99, tokens/s; edgekd.lang.generation_bench, the
code the pipeline's bench stage runs), greedy or top-k sampling, from held-out prompts (the bundle's
eval.npz input_ids) or the user's (`--texts`, one per line, tokenized with the bundle's tokenizer.json); perplexity on
the bundle's held-out blocks, and the bundle's gate: perplexity at most (1 + max_increase) x the reference's, the
reference measured on the same blocks on the build machine.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgekd.core.errors import ArtifactError, ConfigError
from edgekd.core.metrics import eval_set_hash
from edgekd.core.option_names import bench_option
from edgekd.device.bundle import bundle_thresholds, verify_bundle
from edgekd.device.config import GenerationBenchConfig
from edgekd.device.gate import GateResult, Thresholds, gate_report, verdicts
from edgekd.device.measure import bundle_row_names
from edgekd.device.token_ids import check_token_ids
from edgekd.runtimes.decoder import quantization_settings

TOKENIZER = "tokenizer.json"


@dataclass(frozen=True)
class Decoding:
    """How the device generates: greedy (top_k None) or sampling among the top_k at temperature; new_tokens and
    prompts None take the bundle's recorded bench settings."""

    top_k: Optional[int] = None
    temperature: float = 1.0
    seed: int = 0
    new_tokens: Optional[int] = None
    prompts: Optional[int] = None

    def __post_init__(self) -> None:  # the CLI's option bounds and rules, for the API's Decoding too
        none_means = {"top_k": "greedy decoding", "new_tokens": "the bundle's bench setting",
                      "prompts": "the bundle's bench setting"}
        for key, default in none_means.items():  # 0 is no count to use, not "the default" (the CLI refuses it too)
            value = getattr(self, key)
            if value is not None and (not _is_int(value) or value < 1):
                raise ConfigError(f"Decoding({key}={value!r}): give a whole number of 1 or more, or None for {default}")
        if not _is_int(self.seed) or self.seed < 0:
            raise ConfigError(f"Decoding(seed={self.seed!r}): give a whole number of 0 or more (numpy's generators take no "
                              "negative seed)")
        if not isinstance(self.temperature, (int, float)) or not 0 < self.temperature < float("inf"):
            raise ConfigError(f"Decoding(temperature={self.temperature!r}): give a finite number above 0")
        if self.top_k is None and self.temperature != 1.0:
            raise ConfigError(f"Decoding(temperature={self.temperature}): temperature applies to sampling; give top_k too "
                              "(greedy decoding has no temperature)")
        if self.top_k is None and self.seed != 0:  # greedy draws nothing: a seed would be silently ignored
            raise ConfigError(f"Decoding(seed={self.seed}): the seed applies to sampling; give top_k too "
                              "(greedy decoding draws nothing)")

    def describe(self) -> dict[str, Any]:
        if self.top_k is None:
            return {"mode": "greedy"}
        return {"mode": "top-k sampling", "top_k": self.top_k, "temperature": self.temperature, "seed": self.seed}


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_top_k(top_k: Optional[int], manifest: dict[str, Any], bundle_dir: Path) -> None:
    """Sampling among more tokens than the model has is no choice numpy can make (argpartition's kth out of
    bounds): refused with the model's vocabulary size, before anything is loaded."""
    vocab = vocab_size(manifest)
    if top_k is not None and vocab is not None and top_k > vocab:
        raise ConfigError(f"{bench_option('--top-k', top_k)}: the model has {vocab} tokens ({bundle_dir}); give at most {vocab}")


def bench_lm_bundles(bundle_dirs: list[Path], threads: Optional[int] = None, texts: Optional[Path] = None,
                     decoding: Decoding = Decoding()) -> dict[str, Any]:
    """One report (edgekd.report/1, task_metric perplexity: device/report/build.build_report) for the bundles, every
    file verified before anything loads, and with the bundles' gate_on_bench their verdict (device/gate.gate_report)."""
    from edgekd.device.report.build import generation_report
    from edgekd.lang.generation_bench import generation_speed
    from edgekd.runtimes.registry import load_decoder

    bundles = [(Path(d), _verified(Path(d))) for d in bundle_dirs]
    _one_tokenizer(bundles)
    for bundle_dir, manifest in bundles:
        _check_top_k(decoding.top_k, manifest, bundle_dir)
    names = bundle_row_names([(d, m, m.get("precision") or "fp32") for d, m in bundles])
    blocks = {name: _eval_blocks(d, m) for name, (d, m) in zip(names, bundles, strict=True)}
    # a bundle that records no bench settings (made before it did): the pipeline's own defaults
    settings = {**GenerationBenchConfig().model_dump(), **(bundles[0][1].get("bench") or {})}
    new_tokens = int(settings["new_tokens"]) if decoding.new_tokens is None else decoding.new_tokens
    prompts, source = _prompts(bundles[0], blocks[names[0]], texts, settings, decoding, new_tokens)
    if texts is None and len(bundles) > 1 and _same_blocks(list(blocks.values())):  # not one bundle's file for all
        source = f"each bundle's {_eval_file(bundles[0][1])}, the same held-out test blocks"
    fewer = _fewer_prompts_note(decoding.prompts, len(prompts), source)
    # each by the runtime its bundle records (the target's backend's; by the file's suffix in bundles without one)
    decoders = {name: load_decoder(d / m["artifact"]["main"], threads, m.get("runtime")) for name, (d, m) in zip(names, bundles, strict=True)}
    speed = generation_speed(decoders, prompts, new_tokens, int(settings["rounds"]), decoding.top_k, decoding.temperature,
                             decoding.seed)
    gate = bundle_thresholds(bundles[0][1], bundles[0][0])
    rows = [_row(name, d, m, decoders[name], blocks[name], speed[name], gate["reference"]) for name, (d, m) in zip(names, bundles, strict=True)]
    first = blocks[names[0]]
    eval_set = {} if first is None else {"samples": int(len(first)), "sha256": eval_set_hash({"input_ids": first}, first)}
    report = generation_report(bundles[0][1].get("run") or Path(bundle_dirs[0]).resolve().parent.parent.name, rows, {},
                               eval_set, gate, prompts, source, new_tokens, int(settings["rounds"]), decoding.describe(), threads,
                               vocab_size(bundles[0][1]))
    report["warnings"] += [f"{row['artifact']}: {row['not_measured']}" for row in rows if row["perplexity"] is None]
    report["warnings"] += [fewer] if fewer else []
    if bundles[0][1].get("gate_on_bench"):
        report["verdict"] = _verdict(gate_report(report, Thresholds.model_validate(gate)))
    return report


def _verified(bundle_dir: Path) -> dict[str, Any]:
    """The manifest once every file matches its sha256 (device/bundle.verify_bundle; an edgekd.lm-bundle/1 one upgraded
    by device/lm_legacy.py) and the tokenizer is among them: nothing is loaded from a bundle that was modified."""
    manifest = verify_bundle(bundle_dir)
    if TOKENIZER not in _listed(manifest):
        raise ArtifactError(f"{bundle_dir / 'manifest.json'}: lists no {TOKENIZER}; a language model's bundle needs its "
                            "decoder and tokenizer, rebuild the bundle")
    return manifest


def _listed(manifest: dict[str, Any]) -> dict[str, str]:
    return {entry["path"]: entry["sha256"] for entry in manifest["files"]}


def _eval_blocks(bundle_dir: Path, manifest: dict[str, Any]) -> Optional[np.ndarray]:
    """The held-out blocks the bundle carries (eval.npz's input_ids; eval_blocks.npy in edgekd.lm-bundle/1 bundles),
    verified already, checked to be token ids the model takes; None for a bundle that carries none."""
    name = _eval_file(manifest)
    if name is None:
        return None
    path = bundle_dir / name
    try:
        loaded = np.load(path, allow_pickle=False)
        blocks = loaded["input_ids"] if name == "eval.npz" else loaded
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:  # pickled, truncated, not .npy/.npz
        raise ArtifactError(f"{path}: not a plain .npy/.npz array of input_ids ({exc}); rebuild the bundle") from None
    vocab, context = vocab_size(manifest), manifest.get("context")
    if blocks.ndim == 2 and blocks.shape[0] == 0:  # bench.device_blocks 0
        return None
    if blocks.ndim != 2 or not np.issubdtype(blocks.dtype, np.integer) or blocks.shape[1] < 2:
        raise ArtifactError(f"{path}: {blocks.dtype} {blocks.shape}, expected (n >= 1, length >= 2) integer token ids; "
                            "rebuild the bundle")
    if isinstance(context, int) and blocks.shape[1] > context:
        raise ArtifactError(f"{path}: blocks of {blocks.shape[1]} tokens exceed the model's context {context}; rebuild the bundle")
    check_token_ids(blocks, vocab, str(path))
    return blocks.astype(np.int64)


def _eval_file(manifest: dict[str, Any]) -> Optional[str]:
    return next((name for name in ("eval.npz", "eval_blocks.npy") if name in _listed(manifest)), None)


def vocab_size(manifest: dict[str, Any]) -> Optional[int]:
    """The ids the decoder takes (0..vocab_size-1), as the build machine recorded them; None if not recorded."""
    size = manifest.get("vocab_size")
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def _one_tokenizer(bundles: list) -> None:
    """Prompts are tokenized once, so every bundle benched together must carry the same tokenizer.json."""
    digests = {_listed(m)[TOKENIZER] for _d, m in bundles}
    if len(digests) > 1:
        raise ArtifactError(f"{', '.join(str(d) for d, _m in bundles)}: the bundles carry different tokenizers; "
                            "bench them one at a time")


def _prompts(first: tuple, blocks: Optional[np.ndarray], texts: Optional[Path], settings: dict, decoding: Decoding,
             new_tokens: int) -> tuple[list[np.ndarray], str]:
    from edgekd.lang.generation_bench import held_out_prompts, text_prompts

    bundle_dir, manifest = first
    context = int(manifest.get("context") or 0)
    if texts is not None:
        prompts = text_prompts(Path(texts), bundle_dir / TOKENIZER, context, new_tokens)
        check_token_ids(np.concatenate(prompts), vocab_size(manifest), str(bundle_dir / TOKENIZER),
                        f" for the prompts of {texts}, so it is not the tokenizer the model was built with")
        return prompts[: decoding.prompts], str(texts)
    if blocks is None:
        raise ArtifactError(f"{bundle_dir / 'manifest.json'}: the bundle carries no held-out blocks (bench.device_blocks 0, "
                            f"or built before bundles did); give prompts with {bench_option('--texts', 'FILE')}, one per line")
    prompt_tokens = int(settings["prompt_tokens"])
    if context and prompt_tokens + new_tokens > context:
        raise ConfigError(f"{bench_option('--new-tokens', new_tokens)}: with the bundle's prompts of {prompt_tokens} tokens that exceeds the "
                          f"model's context of {context}; ask for at most {context - prompt_tokens}")
    count = int(settings["prompts"]) if decoding.prompts is None else decoding.prompts
    return held_out_prompts(blocks, count, prompt_tokens), f"{bundle_dir / _eval_file(manifest)} (held-out test blocks)"


def _same_blocks(each: list[Optional[np.ndarray]]) -> bool:
    """Whether every bundle carries the same held-out blocks (the bundles of one run do): the prompts, taken from the
    first, are then each bundle's own."""
    return all(blocks is not None and np.array_equal(blocks, each[0]) for blocks in each)


def _fewer_prompts_note(asked: Optional[int], used: int, source: str) -> str:
    """Said when --prompts asks for more prompts than there are (as a classifier's bench says of too few samples):
    the speeds are then measured on fewer prompts than the user believes."""
    if asked is None or used >= asked:
        return ""
    return (f"{bench_option('--prompts', asked)}: {source} gives {used} prompts, so {used} are used; give "
            f"{bench_option('--prompts', used)} or less to say so")


def _row(name: str, bundle_dir: Path, manifest: dict, decoder, blocks: Optional[np.ndarray], speed: dict, reference: str) -> dict:
    """One bundle: its perplexity on its held-out blocks and the reference's on the same blocks (the build machine's),
    which the gate judges it against."""
    from edgekd.lang.perplexity import onnx_perplexity

    recorded = (manifest.get("eval") or {}).get("reference_perplexity") or {}
    valid_of = {name: value for name, value in recorded.items()
                if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0}
    known, valid = recorded.get(reference), reference in valid_of
    row = {"artifact": name, "target": manifest.get("target"), "precision": manifest.get("precision"), "shipped": True,
           "quantization": (manifest.get("quantization") or {}).get("method"),
           "quantization_settings": quantization_settings(manifest.get("quantization") or {}), "bundle": str(bundle_dir),
           "bytes": sum((bundle_dir / name).stat().st_size for name in manifest["artifact"]["files"]),
           "perplexity": None if blocks is None else round(onnx_perplexity(decoder, blocks), 4),
           "eval_blocks": None if blocks is None else int(len(blocks)),
           "reference": {"name": reference, "perplexity": known if valid else None},
           "reference_perplexities": valid_of, **speed}  # every reference the bundle records: `edgekd gate --reference`
    if blocks is None:
        row["not_measured"] = "perplexity: the bundle carries no held-out blocks (rebuild it with this edgekd); not gated"
    return row


def _verdict(checks: GateResult) -> dict[str, Any]:
    """The gate's verdict, as gate.json records one; not evaluated (passed None, exit 0) when no bundle could be checked."""
    if not checks.evaluated:
        return {"passed": None, "summary": "gate: not evaluated (no bundle with held-out blocks and a gate)"}
    return {"passed": checks.passed, "summary": checks.summary, "artifacts": verdicts(checks),
            "checks": [check.__dict__ for check in checks]}
