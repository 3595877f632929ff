"""Device bundles: write them and verify them (sha256, no path escapes); edgekd.device.bench benchmarks them.

Lean on purpose: a device runs this with numpy and one runtime installed, no torch.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from edgekd.core.environment import cpu_info, library_versions
from edgekd.core.errors import ArtifactError
from edgekd.core.fileio import file_record, json_digest, read_json, sha256_of, write_json_atomic, write_text_atomic
from edgekd.core.thresholds import THRESHOLD_NAMES, Thresholds, threshold_error
from edgekd.device.sizes import model_digest
from edgekd.runtimes.base import Artifact
from edgekd.runtimes.registry import get_backend

BUNDLE_SCHEMA = "edgekd.bundle/1"
README = "README.md"  # documentation for whoever unpacks the bundle: nothing loads it, so a copy may leave it behind
_README = """# edgekd bundle: {target}

Model for **{target}** ({backend}, {precision}). Built by edgekd {version} on {built_on}.

On the device:

```
pip install edgekd {runtime_pip}
edgekd bench .          # verifies sha256 sums, measures accuracy on eval.npz and latency
```
{rebuild}
`manifest.json` lists every file with its sha256, the input spec, preprocessing, labels,
the quantization recipe and the metrics measured on the build machine. {feed}
"""
_FEED_IMAGES = """Feed the model what it was built
with, {layout}: {scale}, then {formula} per channel with mean {mean} and std {std} (`preprocessing` in manifest.json;
`eval.npz` is already in that form)."""
_FEED_TEXT = """Feed the model texts tokenized with the bundled
`{tokenizer}` (Hugging Face `tokenizers`: `pip install tokenizers`), padded or cut to {max_length} tokens, as the
inputs {inputs} (`preprocessing.text` in manifest.json). `edgekd bench . --texts FILE.jsonl` measures the bundle on
your own texts (lines of {{"text": ..., "label": ...}})."""
_FEED_TABLE = """Feed the model raw columns as
`preprocessing.tabular` says (its `inputs`): numbers as float32 (NaN: missing), categories as strings ('': missing);
imputation, scaling and one-hot encoding are inside the graph. The graph does not check rows: a category it was not
built with one-hots to zeros and is scored silently. Check rows first with
`edgekd.data.table_schema.model_feed(schema_of(manifest), rows, where)` (numpy only), as `edgekd bench` does: it
names the column of a missing input, text in a number or an unknown category. `eval.npz` holds each input under its
name, and a column named x, y or reference_logits under input.x, input.y, input.reference_logits (its own `y` is the
labels)."""
_FEED_NAMED = """Feed each model input its array as it is,
unscaled (`preprocessing.arrays` lists each input's sample shape and dtype; `eval.npz` holds them under the input
names, an input named x or y under input.x or input.y)."""
_FEED_OTHER = "Feed the model what `preprocessing` in manifest.json describes (`eval.npz` holds inputs in that form)."


def _feed_note(preprocessing: Any) -> str:
    """How the device feeds the model, in the bundle README: a table's raw columns, an image's scaled pixels."""
    preprocessing = preprocessing if isinstance(preprocessing, dict) else {}
    if "tabular" in preprocessing:
        return _FEED_TABLE
    if preprocessing.get("inputs") == "as given":
        return _FEED_NAMED
    if isinstance(preprocessing.get("text"), dict):
        text = preprocessing["text"]
        return _FEED_TEXT.format(tokenizer=text.get("tokenizer", "tokenizer.json"), max_length=text.get("max_length", "?"),
                                 inputs=" and ".join(map(str, text.get("inputs", []))) or "?")
    if "mean" not in preprocessing:
        return _FEED_OTHER
    return _FEED_IMAGES.format(layout=preprocessing.get("layout", "NCHW"), scale=preprocessing.get("scale", "?"),
                               formula=preprocessing.get("formula", "(x - mean[c]) / std[c]"),
                               mean=preprocessing["mean"], std=preprocessing.get("std"))


def _device_packages(runtime: str, preprocessing: Any) -> str:
    """What the README's pip line installs beside edgekd: the runtime, and tokenizers for a text model."""
    text = isinstance(preprocessing, dict) and isinstance(preprocessing.get("text"), dict)
    return f"{runtime} tokenizers" if text else runtime


EVAL_ARRAYS = ("x", "y", "reference_logits")  # eval.npz's own arrays beside the inputs' (x: an image model's one array)


def eval_key(input_name: str) -> str:
    """The eval.npz array of a model input given by name: its name, or input.NAME where the name is one of eval.npz's
    own arrays (a table with a column named y, a feature model whose one input is named x)."""
    return f"input.{input_name}" if input_name in EVAL_ARRAYS else input_name


def write_bundle(bundle_dir: Path, artifact: Artifact, eval_x: np.ndarray, eval_y: np.ndarray,
                 reference_logits: np.ndarray | None, info: dict[str, Any], extra_files: dict[str, Path] | None = None,
                 reference_outputs: dict[str, np.ndarray] | None = None) -> Path:
    """Assemble the bundle in a temporary folder, then swap it into place: a crash leaves the old one.
    `extra_files` ({name in the bundle: source}): what the device needs beside the model to feed it (a text model's
    tokenizer.json), listed with their sha256 like every other file. `reference_outputs`: a fidelity task's fp32
    outputs by name, stored as eval.npz's reference_outputs/<name> (edgekd bench compares every output with them)."""
    # A model with several inputs: one array per input, named as the input (bench/device.py reads them by name).
    # asarray, not astype: float32 images (most) are written as they are, not copied first (500 at 3x224x224: 300 MB)
    named = {eval_key(k): v for k, v in eval_x.items()} if isinstance(eval_x, dict) else {"x": np.asarray(eval_x, dtype=np.float32)}
    staging = bundle_dir.with_name(f".{bundle_dir.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in artifact.files:
        (staging / name).parent.mkdir(parents=True, exist_ok=True)  # an ONNX file's external data may sit in a sub-folder
        shutil.copyfile(artifact.root / name, staging / name)
    for name, source in (extra_files or {}).items():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)  # the fp32 speed-up reference's sub-folder
        shutil.copyfile(source, staging / name)
    # Labels: class indices, or a task metric's (edgekd/core/task_metrics.py), whose boxes have float coordinates.
    labels = eval_y.astype(np.float32) if np.asarray(eval_y).dtype.kind == "f" else eval_y.astype(np.int64)
    np.savez_compressed(staging / "eval.npz", **named, y=labels,  # no reference logits: a language model's bundle
                        **({} if reference_logits is None else {"reference_logits": reference_logits.astype(np.float32)}),
                        **{f"{REFERENCE_OUTPUTS}{name}": array for name, array in (reference_outputs or {}).items()})
    backend = get_backend(artifact.backend)
    write_text_atomic(staging / README, _README.format(
        target=info["target"], backend=artifact.backend, precision=shipped_variant(info, artifact.precision), version=info.get("edgekd_version", "?"),
        built_on=info.get("built_on", "?"), runtime_pip=_device_packages(backend.pip_packages, info.get("preprocessing")),
        rebuild=f"\n{backend.rebuild_note}\n" if artifact.rebuild_on_device else "", feed=_feed_note(info.get("preprocessing"))))
    manifest = {"schema": BUNDLE_SCHEMA, **info, "artifact": artifact.to_json(),
                "files": _file_records(staging, artifact, list(extra_files or {})),
                "eval_set_sha256": sha256_of(staging / "eval.npz")}
    write_json_atomic(staging / "manifest.json", sealed(manifest))
    _swap_into_place(staging, bundle_dir)
    return bundle_dir


# eval.npz's arrays of a fidelity task's fp32 outputs: this prefix and the output's name.
REFERENCE_OUTPUTS = "reference_outputs/"


# The digest of manifest.json's own content. The files' sha256 catch a changed model or eval set, but not a hand
# edit of the manifest itself: a loosened gate limit, other preprocessing or labels would be read as the build
# machine's and a PASS on the device would no longer mean the build machine's gate. Not a defence against someone
# who recomputes it (they could rebuild the bundle): a check that what the device reads is what was built.
SEAL = "manifest_sha256"


def sealed(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest with SEAL, the digest of everything else in it (core.fileio.json_digest)."""
    content = {key: value for key, value in manifest.items() if key != SEAL}
    return {**content, SEAL: json_digest(content)}


def check_seal(manifest: dict[str, Any], manifest_path: Path) -> None:
    """Refuse a manifest edited since it was written; one written before manifests were sealed has no SEAL."""
    recorded = manifest.get(SEAL)
    if recorded is None:
        return
    if recorded != json_digest({key: value for key, value in manifest.items() if key != SEAL}):
        raise ArtifactError(f"{manifest_path}: edited after the bundle was built (its content no longer matches "
                            f"{SEAL}), refused before loading; copy the whole bundle folder again from the build machine "
                            "(RUN/bundle/TARGET); other gate limits go to edgekd gate REPORT as flags (--max-drop ...), not into the manifest")


def shipped_variant(manifest: dict[str, Any], precision: str) -> str:
    """The shipped candidate's name as the compile stage and the build machine's report call it: int8-fallback (some
    nodes kept in float) or int8-qat rather than plain int8; `precision` for bundles that do not record it."""
    quantization = manifest.get("quantization")
    variant = quantization.get("variant") if isinstance(quantization, dict) else None
    return variant if isinstance(variant, str) and variant else precision


def _file_records(bundle_dir: Path, artifact: Artifact, extra: list[str] | None = None) -> list[dict[str, Any]]:
    return [file_record(bundle_dir / name, bundle_dir) for name in [*artifact.files, *(extra or []), "eval.npz", README]]


# What `edgekd compile BUNDLE --target OTHER` keeps of the profile the bundle was built with: the model was quantized by
# its recipe among its precisions, and selected and gated by its limits; another profile cannot loosen them unbuilt.
KEPT_ON_RETARGET = ("quantization", "precisions", "gate")


def rebuild_bundle(bundle_dir: Path, profile=None) -> dict[str, Any]:
    """`edgekd compile BUNDLE`: finish the artifact on this machine (a TensorRT engine, an .ort file),
    then record the new files, their hashes and the settings in manifest.json."""
    manifest, artifact = load_bundle(bundle_dir, before_rebuild=True)
    profile = shipped_profile(profile, manifest.get("runtime_fallback"))
    if profile is not None and profile.backend != artifact.backend:
        raise ArtifactError(f"{bundle_dir}: the bundle holds a {artifact.backend} model; target '{profile.name}' "
                            f"uses {profile.backend}; pick a profile with backend {artifact.backend}")
    # Files beside the model (a tokenizer.json) stay listed: only the artifact's own files change.
    beside = [entry["path"] for entry in manifest["files"]
              if entry["path"] not in {*artifact.files, artifact.main, *get_backend(artifact.backend).built_files,
                                       "eval.npz", README}]
    backend = get_backend(artifact.backend)
    if profile is not None:  # another device of the same backend: its threads and session settings, its name
        artifact = backend.retarget(artifact, profile)
        manifest["target"] = profile.name
        reference = speed_reference(Path(bundle_dir), manifest)
        if reference is not None:  # timed as the shipped model is, or the speed-up compares two thread counts
            manifest[SPEED_REFERENCE] = {**manifest[SPEED_REFERENCE],
                                         "runtime_options": backend.retarget(reference, profile).runtime_options}
    artifact = backend.build(artifact, profile)
    manifest.update(artifact=artifact.to_json(), files=_file_records(Path(bundle_dir), artifact, beside),
                    rebuild_on_device=artifact.rebuild_on_device, rebuilt_on=cpu_info()["model"],
                    rebuilt_with=library_versions())
    if profile is not None:  # the device's settings are the new profile's; what the model is and is held to stays
        recorded = manifest.get("profile") if isinstance(manifest.get("profile"), dict) else {}
        device = {key: value for key, value in profile.model_dump(mode="json").items() if key not in KEPT_ON_RETARGET}
        manifest["profile"] = {**device, **{key: recorded[key] for key in KEPT_ON_RETARGET if key in recorded}}
    manifest = sealed(manifest)
    write_json_atomic(Path(bundle_dir) / "manifest.json", manifest)
    return manifest


def shipped_profile(profile, fallback: dict[str, Any] | None, base_dir: Path | None = None):
    """The profile the bundle was built with: its target's fallback (pipeline/target_runtime.py) when the bundle says
    the target shipped that one because its own runtime could not convert the model (intel-cpu as onnxruntime).
    `base_dir`: where a fallback given as a profile path is found (the run's config folder)."""
    if profile is None or not isinstance(fallback, dict) or fallback.get("target") != profile.name \
            or fallback.get("refused_backend") != profile.backend or not isinstance(fallback.get("given_as"), str):
        return profile
    from edgekd.runtimes.profiles import load_profile, on_fallback

    return on_fallback(profile, load_profile(fallback["given_as"], base_dir), str(fallback.get("line", "")))


def _swap_into_place(staging: Path, final: Path) -> None:
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)


def verify_bundle(bundle_dir: Path, before_rebuild: bool = False) -> dict[str, Any]:
    """Read the manifest and check every file before anything is loaded (README.md may be left behind: nothing loads
    it; copied, it must be the one written).

    Every file the artifact loads (`main` and `files`) must lie inside the bundle folder and be
    listed in `manifest["files"]` with a matching sha256: hashing only what the list names would let
    an edited manifest drop an entry (or point `main` elsewhere) and run an unchecked model.

    `before_rebuild`: `edgekd compile` is about to rebuild the backend's device-built files (an
    engine, an .ort file), so those may be missing, stale or unlisted; every other file is still checked.
    """
    bundle_dir = Path(bundle_dir)
    manifest_path = bundle_dir / "manifest.json"
    if not manifest_path.is_file():
        raise ArtifactError(f"{bundle_dir}: not a bundle (no manifest.json); point at runs/<name>/bundle/<target>")
    manifest = read_json(manifest_path)
    if isinstance(manifest, dict):
        check_seal(manifest, manifest_path)
    if isinstance(manifest, dict) and manifest.get("format") == "edgekd.lm-bundle/1":  # an old LM bundle
        from edgekd.device.lm_legacy import upgrade_lm_manifest

        manifest = upgrade_lm_manifest(manifest, manifest_path)
    artifact = _artifact_section(manifest, manifest_path)
    root = bundle_dir.resolve()
    rebuilt = {_inside(root, name, manifest_path)
               for name in (get_backend(artifact["backend"]).built_files if before_rebuild else ())}
    recorded = _recorded_hashes(manifest, root, manifest_path)
    for path, (name, digest) in recorded.items():
        if path not in rebuilt and not (name == README and not path.exists()):
            _check_hash(bundle_dir, path, name, digest)
    for name in [artifact["main"], *artifact["files"]]:
        path = _inside(root, name, manifest_path)
        if path not in recorded and path not in rebuilt:
            raise ArtifactError(f"{manifest_path}: '{name}' is not covered by the manifest's sha256 list; "
                                "the bundle was modified, bundle it again")
    return manifest


def _artifact_section(manifest: Any, manifest_path: Path) -> dict[str, Any]:
    """The manifest's shape, checked before any key is read: a hand-edited file fails with one line."""
    if isinstance(manifest, dict) and "stages" in manifest and "artifact" not in manifest:  # a run folder's manifest
        bundles = sorted(p.name for p in (manifest_path.parent / "bundle").glob("*") if (p / "manifest.json").is_file())
        listed = f" ({', '.join(bundles)})" if bundles else ""
        raise ArtifactError(f"{manifest_path.parent}: is a run folder, not a bundle; give one of its bundles: "
                            f"{manifest_path.parent / 'bundle'}/<target>{listed}")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("artifact"), dict):
        raise ArtifactError(f"{manifest_path}: not an edgekd bundle manifest (missing 'artifact'); bundle it again")
    if manifest.get("schema") != BUNDLE_SCHEMA:
        raise ArtifactError(f"{manifest_path}: schema {manifest.get('schema')!r}, expected {BUNDLE_SCHEMA!r}")
    artifact = manifest["artifact"]
    files = artifact.get("files")
    if not (isinstance(artifact.get("backend"), str) and isinstance(artifact.get("main"), str)
            and isinstance(files, list) and all(isinstance(f, str) for f in files)):
        raise ArtifactError(f"{manifest_path}: 'artifact' needs 'backend', 'main' and a list of 'files'; bundle it again")
    return artifact


def _recorded_hashes(manifest: dict[str, Any], root: Path, manifest_path: Path) -> dict[Path, tuple[str, str]]:
    """manifest["files"] as {resolved path: (name as listed, sha256)}; every path must stay inside root."""
    entries = manifest.get("files", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("path"), str)
                                                and isinstance(e.get("sha256"), str) for e in entries):
        raise ArtifactError(f"{manifest_path}: 'files' must list {{path, sha256}} entries; bundle it again")
    return {_inside(root, e["path"], manifest_path): (e["path"], e["sha256"]) for e in entries}


def _inside(root: Path, name: str, manifest_path: Path) -> Path:
    """`name` resolved (symlinks followed) below `root`, or a refusal: no absolute paths, no `..`."""
    path = (root / name).resolve()
    if Path(name).is_absolute() or root not in path.parents:
        raise ArtifactError(f"{manifest_path}: file path '{name}' escapes the bundle folder; refused")
    return path


def _check_hash(bundle_dir: Path, path: Path, name: str, digest: str) -> None:
    if not path.is_file():
        raise ArtifactError(f"{bundle_dir}: '{name}' is listed in manifest.json but missing; copy the whole bundle folder "
                            "again from the build machine (RUN/bundle/TARGET)")
    if sha256_of(path) != digest:
        raise ArtifactError(f"{bundle_dir}: '{name}' does not match its recorded sha256; "
                            "the bundle was modified or corrupted, refused before loading; copy the whole bundle folder again "
                            "from the build machine (RUN/bundle/TARGET)")


# The fp32 model a bundle carries when its gate asks a speed-up over fp32 (pipeline/stages/compile._speed_reference):
# the manifest's key, and the sub-folder that holds its files.
SPEED_REFERENCE, SPEED_REFERENCE_FOLDER = "speed_reference", "fp32-reference"


def speed_reference(bundle_dir: Path, manifest: dict[str, Any]) -> Artifact | None:
    """The bundle's fp32 speed-up reference, None when it carries none; its files must be among those the manifest
    hashes (verify_bundle checked them), as the shipped model's are."""
    entry = manifest.get(SPEED_REFERENCE)
    if entry is None:
        return None
    manifest_path = Path(bundle_dir) / "manifest.json"
    if not isinstance(entry, dict) or entry.get("folder") != SPEED_REFERENCE_FOLDER:
        raise ArtifactError(f"{manifest_path}: '{SPEED_REFERENCE}' is malformed; bundle it again")
    artifact = Artifact.from_json(entry, Path(bundle_dir) / SPEED_REFERENCE_FOLDER)
    listed = {e["path"] for e in manifest.get("files", [])}
    unlisted = [name for name in [artifact.main, *artifact.files] if f"{SPEED_REFERENCE_FOLDER}/{name}" not in listed]
    if unlisted:
        raise ArtifactError(f"{manifest_path}: '{SPEED_REFERENCE_FOLDER}/{unlisted[0]}' is not covered by the manifest's "
                            "sha256 list; the bundle was modified, bundle it again")
    return artifact


def load_bundle(bundle_dir: Path, before_rebuild: bool = False) -> tuple[dict[str, Any], Artifact]:
    manifest = verify_bundle(bundle_dir, before_rebuild)
    return manifest, Artifact.from_json(manifest["artifact"], Path(bundle_dir))


def bundle_thresholds(manifest: dict[str, Any], bundle_dir: Path) -> dict[str, Any]:
    """The thresholds the pipeline's gate applied (recorded in the bundle), so a gate on the device
    judges by the same limits. Bundles from before that record: the profile's thresholds where set,
    edgekd's defaults otherwise. Checked by the one Thresholds model: a nan or inf limit is refused here, naming
    the key, rather than written into a report that would pass or fail everything."""
    recorded = manifest.get("gate")
    if isinstance(recorded, dict):
        given, section = {k: v for k, v in recorded.items() if k in THRESHOLD_NAMES}, "gate"
    else:
        profile_gate = manifest.get("profile", {}).get("gate", {}) or {}
        given = {k: v for k, v in profile_gate.items() if k in THRESHOLD_NAMES and v is not None}
        section = "profile.gate"
    base = Thresholds(max_drop=None) if manifest.get("task_metric") == "perplexity" else Thresholds()  # a drop means nothing there
    try:
        return Thresholds.model_validate(base.model_dump() | given).model_dump()
    except ValidationError as exc:
        raise ArtifactError(f"{bundle_dir / 'manifest.json'}: {section}.{threshold_error(exc)}; rebuild the bundle") from None


def bundle_files(bundle_dir: Path) -> list[Path]:
    """Every file of a bundle as its manifest lists them, and the manifest: what a run records as the compile stage's
    outputs, so that --resume redoes the stage when any of them was modified or removed (recording the manifest
    alone, a truncated model.onnx resumed as up to date and gated PASS)."""
    import json

    manifest = Path(bundle_dir) / "manifest.json"
    listed = json.loads(manifest.read_text(encoding="utf-8"))["files"]
    return [Path(bundle_dir) / entry["path"] for entry in listed] + [manifest]


def changed_since_benched(report: dict[str, Any]) -> list[str]:
    """The bundles a report measured whose model files have changed since (a model.onnx replaced after the bench): the
    report no longer describes them. Bundles not found from here, or benched before rows named their model, are
    not checked."""
    changed = []
    for row in report.get("rows", []):
        if not row.get("shipped"):  # a bundle's fp32 speed-up reference: its files are checked with the bundle's
            continue
        folder, recorded = row.get("bundle"), row.get("model_sha256")
        if not (isinstance(folder, str) and isinstance(recorded, str) and (Path(folder) / "manifest.json").is_file()):
            continue
        try:
            _manifest, artifact = load_bundle(Path(folder))
        except ArtifactError:  # a file no longer matches the manifest's sha256
            changed.append(folder)
            continue
        if model_digest(artifact) != recorded:
            changed.append(folder)
    return changed
