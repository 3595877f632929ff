"""Artifacts appear whole or not at all: the helpers every writer goes through, and the pipeline under
a fault injected just before an artifact is renamed into place."""
from __future__ import annotations

import json
import os

import pytest

from edgekd.core.fileio import atomic_files, atomic_path, sha256_of, write_json_atomic

from .helpers import invoke, write_config


def test_atomic_path_keeps_the_old_file_when_the_write_fails(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old and complete")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_bytes(b"new but half")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"old and complete"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_atomic_files_moves_every_file_only_on_success(tmp_path):
    (tmp_path / "model.xml").write_text("old xml")
    with pytest.raises(RuntimeError), atomic_files(tmp_path) as scratch:
        (scratch / "model.xml").write_text("new xml")
        (scratch / "model.bin").write_bytes(b"new bin")
        raise RuntimeError("converter crashed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.xml"]
    assert (tmp_path / "model.xml").read_text() == "old xml"

    with atomic_files(tmp_path) as scratch:
        (scratch / "model.xml").write_text("new xml")
        (scratch / "model.bin").write_bytes(b"new bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin", "model.xml"]
    assert (tmp_path / "model.xml").read_text() == "new xml"


def test_a_second_writer_never_sees_a_partial_json(tmp_path):
    target = tmp_path / "manifest.json"
    write_json_atomic(target, {"stages": {"teachers": {"status": "done"}}})
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_text('{"stages": {"teach')
        raise KeyboardInterrupt
    assert json.loads(target.read_text())["stages"]["teachers"]["status"] == "done"


@pytest.mark.slow
@pytest.mark.parametrize("nth_rename", [3, 7, 12])
def test_ctrl_c_just_before_an_artifact_is_renamed_into_place(tmp_path, monkeypatch, nth_rename):
    """Ctrl-C at the n-th os.replace of a run: whatever the manifest calls done is intact, and
    --resume finishes the run."""
    config = write_config(tmp_path)
    run = tmp_path / "run"
    calls = {"n": 0}
    real_replace = os.replace

    def replace_then_maybe_interrupt(src, dst):
        calls["n"] += 1
        if calls["n"] == nth_rename:
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_then_maybe_interrupt)
    interrupted = invoke("run", config, "--out", run)
    monkeypatch.setattr(os, "replace", real_replace)

    assert interrupted.exit_code == 130, interrupted.output[-3000:]
    manifest = json.loads((run / "manifest.json").read_text())
    for entry in manifest["stages"].values():
        if entry["status"] == "done":
            assert all(sha256_of(run / o["path"]) == o["sha256"] for o in entry["outputs"])
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".staging-")]

    resumed = invoke("run", config, "--out", run, "--resume")
    assert resumed.exit_code == 0, resumed.output[-3000:]
    finished = json.loads((run / "manifest.json").read_text())["stages"]
    assert all(entry["status"] == "done" for entry in finished.values()) and "gate" in finished
