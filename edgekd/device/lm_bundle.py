"""A language model's bundle (manifest format edgekd.lm-bundle/1): written by the pipeline's LM compile stage,
verified and read on the device by `edgekd bench` (device/lm_bench.py) with numpy alone, no torch.

    bundle/<target>/
      model.onnx         the decoder with its KV cache (edgekd.lm.export); or model.xml + model.bin, its OpenVINO IR
      tokenizer.json     byte-level BPE (Hugging Face tokenizers)
      eval_blocks.npy    held-out test token blocks (int32, n x context): perplexity and prompts on the device
      manifest.json      every file's sha256 ({name: sha256}), the model file's name, context, end-of-text id, the gate and its reference
                         perplexities on eval_blocks.npy, the pipeline's bench settings

The manifest's `files` is a mapping name -> sha256 (the image bundle's is a list of records): the format the LM
pipeline has always written, kept so bundles made before the eval file still verify.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.core.errors import ArtifactError
from edgekd.core.fileio import atomic_path, read_json, sha256_of, write_json_atomic
from edgekd.device.token_ids import check_token_ids

LM_BUNDLE_FORMAT = "edgekd.lm-bundle/1"
MODEL, TOKENIZER, EVAL_BLOCKS = "model.onnx", "tokenizer.json", "eval_blocks.npy"


def is_lm_bundle(bundle_dir: Path) -> bool:
    """True when the folder's manifest.json says it is a language model's bundle (read, not verified)."""
    path = Path(bundle_dir) / "manifest.json"
    try:
        manifest = read_json(path)
    except ArtifactError:  # unreadable: reported by whichever verifier reads it next, with its own message
        return False
    return isinstance(manifest, dict) and manifest.get("format") == LM_BUNDLE_FORMAT


def write_lm_bundle(folder: Path, model: Path, tokenizer: Path, info: dict[str, Any],
                    eval_blocks: np.ndarray | None = None) -> list[Path]:
    """The bundle in `folder` (replaced whole): the model, the tokenizer, the held-out blocks and the manifest last,
    so a folder whose manifest exists holds every file it names."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    written = []
    model, *beside = decoder_files(Path(model), info.get("runtime"))
    model_name = f"model{model.suffix}"  # model.onnx, or model.xml for an OpenVINO IR (its model.bin beside it)
    copies = [(model, model_name), (tokenizer, TOKENIZER), *((path, f"model{path.suffix}") for path in beside)]
    for source, name in copies:
        with atomic_path(folder / name) as tmp:
            shutil.copyfile(source, tmp)
        written.append(folder / name)
    if eval_blocks is not None:
        with atomic_path(folder / EVAL_BLOCKS) as tmp, open(tmp, "wb") as handle:
            np.save(handle, np.ascontiguousarray(eval_blocks, dtype=np.int32), allow_pickle=False)
        written.append(folder / EVAL_BLOCKS)
    manifest = {"format": LM_BUNDLE_FORMAT, **info, "model": model_name, "files": {p.name: sha256_of(p) for p in written}}
    return [*written, write_json_atomic(folder / "manifest.json", manifest)]


def verify_lm_bundle(bundle_dir: Path) -> dict[str, Any]:
    """The manifest, once every file it lists matches its sha256 and the model and tokenizer are among them:
    nothing is loaded from a bundle that was modified."""
    bundle_dir = Path(bundle_dir)
    manifest_path = bundle_dir / "manifest.json"
    manifest = read_json(manifest_path)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise ArtifactError(f"{manifest_path}: 'files' must map each file name to its sha256; rebuild the bundle")
    root = bundle_dir.resolve()
    for name in (model_file(manifest), TOKENIZER):
        if name not in files:
            raise ArtifactError(f"{manifest_path}: lists no {name}; a language model's bundle needs its decoder and "
                                "tokenizer, rebuild the bundle")
    for name, digest in files.items():
        path = (root / name).resolve()
        if Path(name).is_absolute() or root not in path.parents:
            raise ArtifactError(f"{manifest_path}: file path '{name}' escapes the bundle folder; refused")
        if not path.is_file():
            raise ArtifactError(f"{bundle_dir / name}: listed in manifest.json but missing; copy the whole bundle folder")
        if sha256_of(path) != digest:
            raise ArtifactError(f"{bundle_dir / name}: does not match its recorded sha256; the bundle was modified or "
                                "corrupted, refused before loading")
    return manifest


def model_file(manifest: dict[str, Any]) -> str:
    """The decoder's file name in the bundle (`model`; model.onnx in bundles that predate the key)."""
    name = manifest.get("model", MODEL)
    return name if isinstance(name, str) else MODEL


def vocab_size(manifest: dict[str, Any]) -> int | None:
    """The ids the decoder takes (0..vocab_size-1), as the build machine recorded them; None if not recorded."""
    size = manifest.get("vocab_size")
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def model_bytes(bundle_dir: Path, manifest: dict[str, Any]) -> int:
    """The decoder's size on disk: every file its session loads (an OpenVINO .xml's .bin too)."""
    return sum(path.stat().st_size for path in decoder_files(Path(bundle_dir) / model_file(manifest), manifest.get("runtime")))


def decoder_files(model: Path, runtime: str | None) -> list[Path]:
    """The files of decoder `model`, as its backend names them: the one the bundle's recorded runtime names, else
    the one whose files these are (runtimes.registry.decoder_backend_for)."""
    from edgekd.runtimes import get_backend
    from edgekd.runtimes.registry import decoder_backend_for

    return get_backend(decoder_backend_for(model, runtime)).decoder_files(model)


def read_eval_blocks(bundle_dir: Path, manifest: dict[str, Any]) -> np.ndarray | None:
    """The held-out blocks the bundle carries (verified already), checked to be token ids the model takes; None
    for a bundle built before it carried any."""
    if EVAL_BLOCKS not in manifest["files"]:
        return None
    path = Path(bundle_dir) / EVAL_BLOCKS
    try:
        blocks = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:  # an object array (pickle), a truncated or non-.npy file
        raise ArtifactError(f"{path}: not a plain .npy array ({exc}); rebuild the bundle") from None
    vocab, context = vocab_size(manifest), manifest.get("context")
    if blocks.ndim != 2 or not np.issubdtype(blocks.dtype, np.integer) or blocks.shape[0] == 0 or blocks.shape[1] < 2:
        raise ArtifactError(f"{path}: {blocks.dtype} {blocks.shape}, expected (n >= 1, length >= 2) integer token ids; "
                            "rebuild the bundle")
    if isinstance(context, int) and blocks.shape[1] > context:
        raise ArtifactError(f"{path}: blocks of {blocks.shape[1]} tokens exceed the model's context {context}; rebuild the bundle")
    check_token_ids(blocks, vocab, str(path))
    return blocks.astype(np.int64)
