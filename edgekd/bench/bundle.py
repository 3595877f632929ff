"""Device bundles: write them and verify them (sha256, no path escapes); edgekd.bench.device benchmarks them.

Lean on purpose: a device runs this with numpy and one runtime installed, no torch.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..environment import cpu_info, library_versions
from ..errors import ArtifactError
from ..fileio import file_record, read_json, sha256_of, write_json_atomic, write_text_atomic
from ..targets.base import Artifact
from ..targets.registry import get_backend

BUNDLE_SCHEMA = "edgekd.bundle/1"
_README = """# edgekd bundle: {target}

Model for **{target}** ({backend}, {precision}). Built by edgekd {version} on {built_on}.

On the device:

```
pip install edgekd {runtime_pip}
edgekd bench .          # verifies sha256 sums, measures accuracy on eval.npz and latency
```
{rebuild}
`manifest.json` lists every file with its sha256, the input spec, preprocessing, labels,
the quantization recipe and the metrics measured on the build machine.
"""


def write_bundle(bundle_dir: Path, artifact: Artifact, eval_x: np.ndarray, eval_y: np.ndarray,
                 reference_logits: np.ndarray, info: dict[str, Any]) -> Path:
    """Assemble the bundle in a temporary folder, then swap it into place: a crash leaves the old one."""
    staging = bundle_dir.with_name(f".{bundle_dir.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in artifact.files:
        shutil.copyfile(artifact.root / name, staging / name)
    np.savez_compressed(staging / "eval.npz", x=eval_x.astype(np.float32), y=eval_y.astype(np.int64),
                        reference_logits=reference_logits.astype(np.float32))
    write_text_atomic(staging / "README.md", _README.format(
        target=info["target"], backend=artifact.backend, precision=artifact.precision, version=info.get("edgekd_version", "?"),
        built_on=info.get("built_on", "?"), runtime_pip=_RUNTIME_PIP.get(artifact.backend, ""),
        rebuild="\nThe TensorRT engine must be built on the device first: `edgekd compile .` "
                "(or the trtexec line in `build_engine.sh`)\n" if artifact.rebuild_on_device else ""))
    manifest = {"schema": BUNDLE_SCHEMA, **info, "artifact": artifact.to_json(), "files": _file_records(staging, artifact),
                "eval_set_sha256": sha256_of(staging / "eval.npz")}
    write_json_atomic(staging / "manifest.json", manifest)
    _swap_into_place(staging, bundle_dir)
    return bundle_dir


def _file_records(bundle_dir: Path, artifact: Artifact) -> list[dict[str, Any]]:
    return [file_record(bundle_dir / name, bundle_dir) for name in [*artifact.files, "eval.npz", "README.md"]]


def rebuild_bundle(bundle_dir: Path, profile=None) -> dict[str, Any]:
    """`edgekd compile BUNDLE`: finish the artifact on this machine (a TensorRT engine, an .ort file),
    then record the new files, their hashes and the settings in manifest.json."""
    manifest, artifact = load_bundle(bundle_dir, before_rebuild=True)
    if profile is not None and profile.backend != artifact.backend:
        raise ArtifactError(f"{bundle_dir}: the bundle holds a {artifact.backend} model; target '{profile.name}' "
                            f"uses {profile.backend}; pick a profile with backend {artifact.backend}")
    artifact = get_backend(artifact.backend).build(artifact, profile)
    manifest.update(artifact=artifact.to_json(), files=_file_records(Path(bundle_dir), artifact),
                    rebuild_on_device=artifact.rebuild_on_device, rebuilt_on=cpu_info()["model"],
                    rebuilt_with=library_versions())
    if profile is not None:
        manifest["profile"] = profile.model_dump(mode="json")
    write_json_atomic(Path(bundle_dir) / "manifest.json", manifest)
    return manifest


_RUNTIME_PIP = {"ort": "onnxruntime", "ort-arm64": "onnxruntime", "openvino": "openvino", "tensorrt": "tensorrt cuda-python"}


def _swap_into_place(staging: Path, final: Path) -> None:
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)


def verify_bundle(bundle_dir: Path, before_rebuild: bool = False) -> dict[str, Any]:
    """Read the manifest and check every file before anything is loaded.

    `before_rebuild`: `edgekd compile` is about to rebuild the backend's device-built files (an
    engine, an .ort file), so those may be missing or stale; every other file is still checked.
    """
    bundle_dir = Path(bundle_dir)
    if not (bundle_dir / "manifest.json").is_file():
        raise ArtifactError(f"{bundle_dir}: not a bundle (no manifest.json); point at runs/<name>/bundle/<target>")
    manifest = read_json(bundle_dir / "manifest.json")
    if manifest.get("schema") != BUNDLE_SCHEMA:
        raise ArtifactError(f"{bundle_dir}/manifest.json: schema {manifest.get('schema')!r}, expected {BUNDLE_SCHEMA!r}")
    root = bundle_dir.resolve()
    rebuilt = get_backend(manifest["artifact"]["backend"]).built_files if before_rebuild else ()
    for entry in manifest.get("files", []):
        if entry["path"] in rebuilt:
            continue
        path = (root / entry["path"]).resolve()
        if root not in path.parents:
            raise ArtifactError(f"{bundle_dir}/manifest.json: file path '{entry['path']}' escapes the bundle folder; refused")
        if not path.is_file():
            raise ArtifactError(f"{bundle_dir}: '{entry['path']}' is listed in manifest.json but missing")
        if sha256_of(path) != entry["sha256"]:
            raise ArtifactError(f"{bundle_dir}: '{entry['path']}' does not match its recorded sha256; "
                                "the bundle was modified or corrupted, refused before loading")
    return manifest


def load_bundle(bundle_dir: Path, before_rebuild: bool = False) -> tuple[dict[str, Any], Artifact]:
    manifest = verify_bundle(bundle_dir, before_rebuild)
    return manifest, Artifact.from_json(manifest["artifact"], Path(bundle_dir))
