"""A tiny language model's run folder with two real bundles (fp32 and dynamic int8), made in seconds: a byte-level
BPE tokenizer trained on the generated corpus of tests/lm, an untrained one-layer GPT-2 exported with its KV cache,
held-out blocks from files the tokenizer never saw, and the fp32 model's perplexity on them as the gate's reference
(measured, as the pipeline's compile stage measures it). Building needs torch; benching them must not."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tests.lm.conftest import write_corpus

CONTEXT = 32
BENCH = {"prompts": 3, "prompt_tokens": 8, "new_tokens": 8, "rounds": 1}


def write_old_lm_bundle(folder: Path, model: Path, tokenizer: Path, info: dict[str, Any],
                        eval_blocks: np.ndarray | None = None) -> list[Path]:
    """A bundle as edgekd wrote language models' bundles before they became edgekd.bundle/1 (format
    edgekd.lm-bundle/1: `files` maps name -> sha256, `model` names the decoder): device/lm_legacy.py must read it."""
    from edgekd.core.fileio import atomic_path, sha256_of, write_json_atomic
    from edgekd.runtimes import get_backend
    from edgekd.runtimes.registry import decoder_backend_for

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    written = []
    model, *beside = get_backend(decoder_backend_for(Path(model), info.get("runtime"))).decoder_files(Path(model))
    model_name = f"model{model.suffix}"
    for source, name in [(model, model_name), (tokenizer, "tokenizer.json"), *((p, f"model{p.suffix}") for p in beside)]:
        with atomic_path(folder / name) as tmp:
            shutil.copyfile(source, tmp)
        written.append(folder / name)
    if eval_blocks is not None:
        with atomic_path(folder / "eval_blocks.npy") as tmp, open(tmp, "wb") as handle:
            np.save(handle, np.ascontiguousarray(eval_blocks, dtype=np.int32), allow_pickle=False)
        written.append(folder / "eval_blocks.npy")
    manifest = {"format": "edgekd.lm-bundle/1", **info, "model": model_name, "files": {p.name: sha256_of(p) for p in written}}
    return [*written, write_json_atomic(folder / "manifest.json", manifest)]


def write_lm_bundle(folder: Path, model: Path, tokenizer: Path, info: dict[str, Any],
                    eval_blocks: np.ndarray | None = None) -> Path:
    """A language model's bundle as the pipeline's compile stage writes it (edgekd.bundle/1): the decoder as model.onnx,
    tokenizer.json, and eval.npz's input_ids the held-out blocks (none: a (0, length) array)."""
    from edgekd.device.bundle import write_bundle
    from edgekd.runtimes.base import Artifact

    blocks = np.zeros((0, info["context"]), np.int64) if eval_blocks is None else eval_blocks
    info = {"task_metric": "perplexity", "gate_on_bench": True, "runtime": "onnxruntime", **info}
    with tempfile.TemporaryDirectory() as root:
        shutil.copyfile(model, Path(root) / "model.onnx")
        artifact = Artifact("ort", info["precision"], Path(root), "model.onnx", ["model.onnx"])
        return write_bundle(folder, artifact, {"input_ids": blocks}, blocks, None, info, extra_files={"tokenizer.json": tokenizer})


def build_lm_run(root: Path, old: bool = False) -> Path:
    """`old`: the bundles in the edgekd.lm-bundle/1 format (write_old_lm_bundle)."""
    from edgekd.lang.lm_tokenizer import LMTokenizer, blocks, train_tokenizer
    from edgekd.lang.perplexity import onnx_perplexity
    from edgekd.lm.export import export_decoder
    from edgekd.lm.models import LMShape, build_lm, gpt2_config
    from edgekd.runtimes.decoder_quantize import quantize_decoder
    from edgekd.runtimes.ort import OnnxDecoder

    corpus = write_corpus(root / "corpus", files=40)
    files = sorted(corpus.rglob("*.py"))
    train, held_out = files[:30], files[30:]
    tokenizer = LMTokenizer(train_tokenizer((p.read_text() for p in train), 300, root / "tokenizer.json"))
    eval_blocks = blocks(tokenizer.encode_documents(p.read_text() for p in held_out), CONTEXT)[:6]
    model = build_lm(gpt2_config(tokenizer.vocab_size, LMShape(layers=1, width=32, heads=2, context=CONTEXT),
                                 eos_id=tokenizer.eos_id), seed=0)
    fp32 = export_decoder(model, root / "models" / "student-fp32.onnx")
    int8 = quantize_decoder(fp32, root / "models" / "student-dynamic.onnx", "dynamic", reduce_range=True)
    reference = round(onnx_perplexity(OnnxDecoder(fp32), eval_blocks), 4)
    run = root / "run"
    for target, precision, model_path in (("x86-cpu", "fp32", fp32), ("arm64-cpu", "int8", int8)):
        info = {"task": "language-model", "target": target, "precision": precision,
                "quantization": {"method": "dynamic" if precision == "int8" else "none"}, "context": CONTEXT,
                "eos_id": tokenizer.eos_id, "vocab_size": tokenizer.vocab_size,
                "gate": {"max_increase": 0.05, "reference": "student_fp32"}, "bench": BENCH,
                "eval": {"file": "eval_blocks.npy" if old else "eval.npz", "split": "test", "blocks": len(eval_blocks), "block_tokens": CONTEXT,
                         "reference_perplexity": {"student_fp32": reference}}}
        (write_old_lm_bundle if old else write_lm_bundle)(run / "bundle" / target, model_path, tokenizer.path, info, eval_blocks)
    np.save(root / "eval_blocks_copy.npy", eval_blocks, allow_pickle=False)
    return run
