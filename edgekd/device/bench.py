"""`edgekd bench BUNDLE` on the device: verify, then measure with numpy and the bundle's runtime only.

The bundle carries eval.npz (x, y and the fp32 student's logits from the build machine), so accuracy,
the drop against the fp32 student and fidelity are measured on the device, with the same code and the
same report schema as the pipeline's bench stage.
"""
from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.core.batch_layout import samples_first_shape
from edgekd.core.errors import ArtifactError, ConfigError, DataError, TargetError
from edgekd.core.fileio import read_json, read_npz
from edgekd.core.metrics import ACCURACY, FIDELITY, accuracy_metrics, eval_set_hash, predict
from edgekd.core.option_names import bench_option, option_name
from edgekd.data.table_schema import model_feed, schema_of
from edgekd.device.bundle import REFERENCE_OUTPUTS, bundle_thresholds, eval_key, load_bundle, speed_reference
from edgekd.device.config import BenchConfig
from edgekd.device.latency import LatencySpec
from edgekd.device.lm_bench import Decoding
from edgekd.device.measure import Candidate, artifact_name, bundle_row_names, measure_rows, runtime_note
from edgekd.device.report.build import build_report
from edgekd.device.run_state import refuse_stale
from edgekd.device.token_ids import check_token_ids
from edgekd.runtimes.host_fit import host_warnings
from edgekd.runtimes.registry import get_backend


def bundle_paths(path: Path) -> list[Path]:
    """A bundle folder, every bundle of a run folder (runs/<name>/bundle/<target>), or every bundle of a folder of them
    (a run's bundle/ copied to the device under another name)."""
    path = Path(path)
    if (path / "manifest.json").is_file() and not (path / "bundle").is_dir():
        if path.parent.name == "bundle":  # runs/<name>/bundle/<target>: still what its run ships?
            refuse_stale(path.parent.parent, "compile", f"bundle {path}")
        return [path]
    if not (path / "bundle").is_dir() and path.name == "bundle":  # RUN/bundle itself: the run's bundles
        path = path.parent
    bundles = sorted(p.parent for p in (path / "bundle").glob("*/manifest.json"))
    if not bundles:
        copied = sorted(p.parent for p in path.glob("*/manifest.json"))  # a run's bundle/ folder copied under another name
        if copied:
            return copied
        raise ArtifactError(f"{path}: no bundle here; give a bundle folder, a folder of bundles, or a run folder with "
                            "bundle/<target>/")
    refuse_stale(path, "compile", f"the bundles of {path}")
    return bundles


def _load_eval(bundle_dir: Path, manifest: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    path = bundle_dir / "eval.npz"
    data = read_npz(path, "rebuild the bundle", ArtifactError)
    inputs = _named_inputs(manifest, data)
    missing = [k for k in ([_stored_as(i["name"], data) for i in inputs] if inputs else ["x"]) + ["y", "reference_logits"]
               if k not in data]
    if missing:
        raise ArtifactError(f"{path}: no array {', '.join(missing)}; rebuild the bundle")
    y, logits = data["y"], data["reference_logits"]
    if inputs:  # one array per input, named as the input
        x = {spec["name"]: data[_stored_as(spec["name"], data)] for spec in inputs}
        schema = schema_of(manifest)
        if schema is not None:  # a table: every column there, numbers where numbers belong, no unseen category
            x = model_feed(schema, x, str(path))
        _check_named_arrays(path, x, y, logits, inputs)
        return x, y, logits
    x = data["x"]
    if manifest.get("task") == "fidelity" or task_metric_of(manifest) != "top1":  # any model's input and output
        _check_task_arrays(path, x, y, logits)
    else:
        _check_eval_arrays(path, x, y, logits, manifest)
    return x, y, logits


def task_metric_of(manifest: dict[str, Any]) -> str:
    """What the bundle's eval.npz y is scored by: its manifest's task_metric (core/task_metrics.py), else top-1."""
    from edgekd.core.task_metrics import METRICS

    metric = manifest.get("task_metric") or "top1"
    if metric not in METRICS:
        raise ArtifactError(f"manifest task_metric {metric!r}: unknown to this edgekd (known: {', '.join(METRICS)}); "
                            "upgrade edgekd on the device")
    return metric


def _check_task_arrays(path: Path, x: np.ndarray, y: np.ndarray, outputs: np.ndarray) -> None:
    """A fidelity task's eval.npz: any shapes, one row of each per sample."""
    if not (len(x) == len(y) == len(outputs)) or x.ndim < 2:
        raise ArtifactError(f"{path}: x {x.shape}, y {y.shape} and reference_logits {outputs.shape} must hold one row per "
                            "sample; rebuild the bundle")


def _named_inputs(manifest: dict[str, Any], data: dict[str, np.ndarray] | None = None) -> list[dict[str, Any]] | None:
    """The manifest's `inputs` when eval.npz holds one array per input name: a model with several inputs, or one
    whose single input was given by its own name (`edgekd ship --data` with `features=...`); None for the one array
    `x` of an image model."""
    inputs = manifest.get("inputs")
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, dict) and isinstance(i.get("name"), str)
                                                             for i in inputs):
        return None
    if len(inputs) > 1:
        return inputs
    return inputs if data is not None and "x" not in data and eval_key(inputs[0]["name"]) in data else None


def _stored_as(input_name: str, data: dict[str, np.ndarray]) -> str:
    """The eval.npz array of a named input: eval_key's, or the bare name in bundles from before an input named x went
    under input.x."""
    key = eval_key(input_name)
    return key if key in data or input_name not in data else input_name


def _check_named_arrays(path: Path, x: dict[str, np.ndarray], y: np.ndarray, logits: np.ndarray, inputs: list) -> None:
    """Each named array against its input's spec (dtype, fixed dimensions), and one sample count throughout. eval.npz
    holds samples first, as edgekd does inside (a recurrent state [2, batch, H] as [batch, 2, H], core/batch_layout)."""
    for spec in inputs:
        array, given = x[spec["name"]], spec.get("shape")
        shape = samples_first_shape(given) if isinstance(given, list) else None  # None: the manifest does not say
        fits = shape is None or (array.ndim == len(shape) and all(not isinstance(d, int) or d == n
                                                                  for d, n in zip(shape, array.shape)))
        if not fits or not _dtype_fits(array, spec.get("dtype")):
            dims = "(" + ", ".join(str(d) for d in given or []) + ")"
            raise ArtifactError(f"{path}: array '{spec['name']}' is {array.dtype.name} {tuple(array.shape)} but the model's input "
                                f"'{spec['name']}' is {spec.get('dtype')} {dims}; rebuild the bundle")
    counts = {name: len(array) for name, array in x.items()}
    if len(set(counts.values())) > 1 or len(y) != len(logits) or len(y) not in counts.values():
        raise ArtifactError(f"{path}: arrays hold different numbers of samples ({counts}, y {len(y)}, "
                            f"reference_logits {len(logits)}); rebuild the bundle")


def _dtype_fits(array: np.ndarray, dtype: str | None) -> bool:
    """An ONNX string input (numpy's 'object' in the manifest) takes an array of str; the rest by dtype name."""
    return array.dtype.kind == "U" if dtype == "object" else array.dtype.name == dtype


def _check_eval_arrays(path: Path, x: np.ndarray, y: np.ndarray, logits: np.ndarray, manifest: dict[str, Any]) -> None:
    """Shapes that fit each other and the model the manifest describes: a mismatch is bad input, not a crash."""
    shape = (manifest.get("input") or {}).get("shape") if isinstance(manifest.get("input"), dict) else None
    expected = tuple(shape[1:]) if isinstance(shape, list) and all(isinstance(d, int) for d in shape[1:]) else None
    problem = None
    if x.ndim != 4 or not np.issubdtype(x.dtype, np.floating):
        problem = f"images 'x' must be a float (N, C, H, W) array, got {x.dtype} {x.shape}"
    elif expected and tuple(x.shape[1:]) != expected:
        problem = f"images 'x' are {tuple(x.shape[1:])}, the model takes {expected}"
    elif y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or len(y) != len(x):
        problem = f"labels 'y' must be {len(x)} integers, one per image, got {y.dtype} {y.shape}"
    elif logits.ndim != 2 or len(logits) != len(x):
        problem = f"'reference_logits' must be ({len(x)}, classes), got {logits.shape}"
    if problem:
        raise ArtifactError(f"{path}: {problem}; rebuild the bundle")


def _require_pillow() -> None:
    """--images decodes files with Pillow, which a device install (edgekd, numpy, a runtime) need not have."""
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise ConfigError("--images: decoding image files needs Pillow, which is not installed here; pip install pillow "
                          "(or bench the bundle's own eval.npz: leave out --images)") from None


def _require_a_runtime(loaded: list) -> None:
    """Benching a bundle that cannot run here is an error with the install hint, not an empty report."""
    backends = [(bundle_dir, get_backend(artifact.backend)) for bundle_dir, _m, artifact, *_ in loaded]
    if not any(backend.available() for _, backend in backends):
        bundle_dir, backend = backends[0]
        raise TargetError(f"{bundle_dir}: cannot run this {backend.name} bundle here; {backend.unavailable_reason()}")


# Tasks whose bundles are measured their own way (by the manifest's task), each returning an edgekd.report/1 report.
MEASURES = {"language-model": "edgekd.device.lm_bench:bench_lm_bundles"}


def profiles_batch_sizes(manifests: Sequence[dict[str, Any]]) -> tuple[int, ...]:
    """The batch sizes the bundles' target profiles name (a bundle without its profile: 1 and the bench section's
    default), so a board is timed at the batches its profile says it runs."""
    sizes = {1}
    for manifest in manifests:
        listed = (manifest.get("profile") or {}).get("batch_sizes")
        ok = isinstance(listed, list) and listed and all(isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= 4096
                                                        for b in listed)
        sizes.update(listed if ok else (BenchConfig().batch_size,))
    return tuple(sorted(sizes))


def bench_bundles(path: Path, spec: LatencySpec, threads: int | None = None, batch_sizes: Sequence[int] | None = (1,),
                  memory: bool = True, images: Path | None = None, texts: Path | None = None,
                  decoding: Decoding | None = None) -> dict[str, Any]:
    """One report (schema edgekd.report/1) for the bundle, or all bundles of a run folder, on this machine: on the
    bundles' eval.npz, or on a folder of raw image files (`images`) decoded as the manifest's preprocessing says.
    Language models' bundles are measured their own way (MEASURES: device/lm_bench.py): perplexity, generation speed
    and their gate (report["verdict"]), with prompts from `texts` (one per line) or the bundle's held-out blocks."""
    paths = bundle_paths(path)
    own = _own_measure(paths, images)
    if own is not None:
        return own(paths, threads, texts, decoding or Decoding())
    if decoding is not None:
        raise ConfigError(f"{path}: {_decoding_options()} are for language models' bundles; "
                          "this one is not")
    loaded = [(bundle_dir, *load_bundle(bundle_dir)) for bundle_dir in paths]  # sha256 checked first
    _require_a_runtime(loaded)
    names = bundle_row_names([(d, m, a.precision) for d, m, a in loaded])
    candidates = [Candidate(name, m.get("target", d.name), a, threads, verdict="bundle", runtime_note=runtime_note(m.get("runtime_fallback")),
                            profile_gate=profile_limits(m)) for name, (d, m, a) in zip(names, loaded, strict=True)]
    folders = [d for d, _m, _a in loaded]
    for d, m, _a in loaded:  # the fp32 model a bundle carries so that its speed-up over fp32 is timed here too
        reference = speed_reference(d, m)
        if reference is not None:
            name = artifact_name(m.get("target", d.name), "fp32")
            name = artifact_name(d.name, "fp32") if any(c.name == name for c in candidates) else name
            candidates.append(Candidate(name, m.get("target", d.name), reference,
                                        threads, shipped=False, verdict="fp32 speed-up reference carried by the bundle"))
            folders.append(d)
    first_manifest = loaded[0][1]
    metric = task_metric_of(first_manifest)
    if metric != "top1" and (texts is not None or images is not None):
        raise ConfigError(f"{bench_option('--images')}/{bench_option('--texts')}: {paths[0]} is judged by {metric}, which needs "
                          f"its labels in eval.npz; bench it on its eval.npz (no {bench_option('--images')}, no {bench_option('--texts')})")
    outputs = None  # a fidelity task's fp32 outputs by name: only eval.npz has them
    if texts is not None:
        x, y, reference, references, eval_set = _on_texts(Path(texts), loaded, candidates)
        measured, gate = ACCURACY, bundle_thresholds(first_manifest, loaded[0][0])
    elif images is None:
        x, y, reference, references, eval_set, outputs = _on_eval_npz(loaded)
        measured, gate = first_manifest.get("measured") or ACCURACY, bundle_thresholds(first_manifest, loaded[0][0])
    else:
        x, y, reference, references, eval_set, measured, gate = _on_images(Path(images), loaded, candidates)
    batch_sizes = batch_sizes or profiles_batch_sizes([m for _d, m, _a in loaded])
    rows = measure_rows(candidates, x, y, reference, spec, batch_sizes, memory=memory, metric=metric,
                        reference_outputs=outputs)
    for row, bundle_dir in zip(rows, folders, strict=True):
        row["bundle"] = str(bundle_dir)
    run_name = first_manifest.get("run") or Path(path).resolve().name
    notes = [w for _d, m, _a in loaded for w in host_warnings(_as_benched(m.get("profile") or {}, threads))]
    report = build_report(run_name, rows, references, eval_set, gate, spec, batch_sizes, memory, host_warnings=notes,
                          measured=measured, task_metric=metric)
    if eval_set.get("reference_is_a_candidate") and measured == FIDELITY:
        report["warnings"].insert(0, f"no labels: fidelity is measured against {eval_set['reference']}, one of the bundles "
                                     "benched, whose agreement with itself is 1 by construction; bench a run folder holding "
                                     "the fp32 bundle and others to compare them")
    return report


def profile_limits(manifest: dict[str, Any]) -> dict[str, Any]:
    """The limits the bundle's target profile set (its gate section as the manifest records it, unset ones null)."""
    gate = (manifest.get("profile") or {}).get("gate") if isinstance(manifest.get("profile"), dict) else None
    return {key: value for key, value in gate.items() if value is not None} if isinstance(gate, dict) else {}


def _as_benched(profile: dict[str, Any], threads: int | None) -> dict[str, Any]:
    """The profile with --threads in place of its own: more threads than this machine's cores is what the host warning
    must say (the latency's noise is then the flag's, not the machine's)."""
    return {**profile, "threads": threads, "threads_from": "--threads"} if threads else profile


def bundle_task(bundle_dir: Path) -> str | None:
    """The task a bundle's manifest.json names (read, not verified: the verifier that reads it next reports a bad one);
    an edgekd.lm-bundle/1 one, from before manifests named it, is a language model's."""
    try:
        manifest = read_json(Path(bundle_dir) / "manifest.json")
    except ArtifactError:
        return None
    if not isinstance(manifest, dict):
        return None
    return "language-model" if manifest.get("format") == "edgekd.lm-bundle/1" else manifest.get("task")


def _decoding_options() -> str:
    """The decoding settings as the caller gave them: the CLI's flags, or api.bench's `decoding` (api.Decoding)."""
    return option_name("--top-k, --temperature, --seed, --new-tokens and --prompts", "decoding (api.Decoding)")


def _own_measure(paths: list[Path], images: Path | None):
    """The bench of the bundles' task where it measures its own way (MEASURES), else None: the classifiers' bench."""
    tasks = {bundle_task(p) for p in paths}
    own = [MEASURES[t] for t in tasks if t in MEASURES]
    if not own:
        return None
    if len(tasks) > 1:
        raise ArtifactError(f"{paths[0].parent}: bundles of different kinds of model ({', '.join(sorted(map(str, tasks)))}); "
                            "bench them separately")
    if images is not None:
        raise ConfigError(f"{bench_option('--images')}: {paths[0]} is a language model's bundle; give prompts with "
                          f"{bench_option('--texts', 'FILE')} (one per line)")
    module, _, name = own[0].partition(":")
    return getattr(importlib.import_module(module), name)


def _on_eval_npz(loaded: list) -> tuple:
    evals = [_load_eval(bundle_dir, manifest) for bundle_dir, manifest, _a in loaded]
    x, y, reference = evals[0]
    outputs = reference_outputs(loaded[0][0])
    metric = task_metric_of(loaded[0][1])
    digest = eval_set_hash(x, y)
    for (bundle_dir, *_rest), (bx, by, own) in zip(loaded[1:], evals[1:], strict=True):
        if eval_set_hash(bx, by) != digest:
            raise ArtifactError(f"{bundle_dir}/eval.npz: a different evaluation set than {loaded[0][0]}; bench them separately")
        # Every bundle is judged against the first one's fp32 outputs: bundles of one run carry the same ones. Other
        # outputs mean another model (a folder rerun with another model and fewer targets kept an old bundle), whose
        # fidelity to this reference would be a number about two different models.
        if own.shape != reference.shape or not np.allclose(own, reference, rtol=1e-4, atol=1e-5):
            raise ArtifactError(f"{bundle_dir}: built from another model than {loaded[0][0]} (the fp32 reference outputs "
                                "in their eval.npz differ); bench them separately, or rebuild the run")
    references = {"student_fp32": {**accuracy_metrics(reference, y, metric), "source": "bundle eval.npz reference_logits"}}
    return x, y, reference, references, {"samples": len(y), "sha256": digest}, outputs


def reference_outputs(bundle_dir: Path) -> dict[str, np.ndarray] | None:
    """A fidelity task's fp32 outputs by name from eval.npz (bundle.REFERENCE_OUTPUTS), or None (other bundles)."""
    data = read_npz(bundle_dir / "eval.npz", "rebuild the bundle", ArtifactError)
    found = {key.removeprefix(REFERENCE_OUTPUTS): array for key, array in data.items() if key.startswith(REFERENCE_OUTPUTS)}
    return found or None


def _on_images(folder: Path, loaded: list, candidates: list[Candidate]) -> tuple:
    """Raw image files decoded per batch with the bundles' own preprocessing (Pillow and numpy: data/images.py, the
    code the build machine used). Class sub-folders named as the bundle's labels give top-1; without them the
    bundles are judged by fidelity to the fp32 bundle (else the first one): their top-1 agreement with it."""
    from edgekd.data.images import LazyImages, Preprocess, warn_eight_bit_in_sixteen_bit
    from edgekd.data.sources import folder_by_labels

    manifest_of = {d: m for d, m, _a in loaded}
    # Whether the bundle takes images at all first: Pillow is only worth installing for one that does.
    steps = {d: Preprocess.from_manifest(m.get("preprocessing"), f"{d}/manifest.json") for d, m in manifest_of.items()}
    _require_pillow()
    if len(set(steps.values())) > 1:
        raise ArtifactError(f"--images: the bundles decode images differently ({', '.join(str(d) for d in steps)}); "
                            "bench them one at a time")
    first_dir, first = loaded[0][0], loaded[0][1]
    files, y = folder_by_labels(folder, [str(label) for label in first.get("labels") or []], "--images")
    warn_eight_bit_in_sixteen_bit(files, f"--images '{folder}'")
    x = LazyImages(files, steps[first_dir])
    expected = tuple((first.get("preprocessing") or {}).get("input_shape") or ())
    if expected and tuple(x.shape[1:]) != expected:
        raise DataError(f"--images '{folder}': images decode to {tuple(x.shape[1:])} but the model takes {expected}; "
                        "the manifest's preprocessing does not fit these images")
    index = next((i for i, c in enumerate(candidates) if c.artifact.precision == "fp32"), 0)
    reference = predict(get_backend(candidates[index].artifact.backend).session(candidates[index].artifact,
                                                                                candidates[index].threads).run, x)
    measured = ACCURACY if y is not None else FIDELITY
    y = reference.argmax(1).astype(np.int64) if y is None else y
    gate = bundle_thresholds(first, first_dir)
    references = {}
    if candidates[index].artifact.precision == "fp32":
        references["student_fp32"] = {**accuracy_metrics(reference, y), "source": f"{candidates[index].name} on {folder}"}
        gate["reference"] = "student_fp32"
    else:
        gate["reference"] = candidates[index].name
    digest = hashlib.sha256(x.fingerprint().encode() + np.ascontiguousarray(y).tobytes()).hexdigest()
    eval_set = {"samples": len(y), "sha256": digest, "images": str(folder), "reference": candidates[index].name,
                # the reference tells nothing about the others: no fp32 bundle among them, or no other bundle at all
                "reference_is_a_candidate": candidates[index].artifact.precision != "fp32" or len(candidates) == 1}
    return x, y, reference, references, eval_set, measured, gate


# On the device the model is fixed: a label it was not trained on can only be dropped from the file or renamed.
_DEVICE_LABEL_ADVICE = "the bundle's model cannot predict them: drop those examples or name them by the bundle's labels"


def _on_texts(path: Path, loaded: list, candidates: list[Candidate]) -> tuple:
    """Raw texts with labels (a .jsonl or .csv of text,label, as the pipeline reads them) tokenized with the bundle's
    own tokenizer.json (Hugging Face tokenizers, no torch), judged against the bundle's labels; the reference is the
    fp32 bundle among those benched (else the first), as for --images."""
    from edgekd.lang import corpus
    from edgekd.lang import text_tokenizer as tokenizer

    texts = [(d, (m.get("preprocessing") or {}).get("text")) for d, m, _a in loaded]
    if any(not isinstance(text, dict) or not isinstance(text.get("tokenizer"), str) for _d, text in texts):
        raise ArtifactError(f"--texts: {next(d for d, t in texts if not isinstance(t, dict))} is not a text model's bundle "
                            "(its manifest has no preprocessing.text); give --texts only with text bundles")
    if len({json.dumps(text, sort_keys=True) for _d, text in texts}) > 1:
        raise ArtifactError("--texts: the bundles tokenize differently; bench them one at a time")
    first_dir, text = texts[0]
    # The tokenizer file is listed in the manifest with its sha256, which load_bundle has checked.
    tok = tokenizer.load(first_dir / text["tokenizer"], int(text["max_length"]))
    examples = corpus.load(path)
    labels = [str(label) for label in loaded[0][1].get("labels") or []]
    y = corpus.label_ids(examples, labels, f"--texts {path}", _DEVICE_LABEL_ADVICE, "labels of the bundle")
    x = tokenizer.encode(tok, [e.text for e in examples])
    check_token_ids(x["input_ids"], text.get("vocab_size"), str(first_dir / text["tokenizer"]),
                    f" for the texts of {path}, so it is not the tokenizer the model was built with")
    index = next((i for i, c in enumerate(candidates) if c.artifact.precision == "fp32"), 0)
    reference = predict(get_backend(candidates[index].artifact.backend).session(candidates[index].artifact,
                                                                                candidates[index].threads).run, x)
    references = {}
    if candidates[index].artifact.precision == "fp32":
        references["student_fp32"] = {**accuracy_metrics(reference, y), "source": f"{candidates[index].name} on {path}"}
    eval_set = {"samples": len(y), "sha256": eval_set_hash(x, y), "texts": str(path), "reference": candidates[index].name,
                "reference_is_a_candidate": candidates[index].artifact.precision != "fp32" or len(candidates) == 1}
    return x, y, reference, references, eval_set
