"""fileio: atomic writes name the file they could not write; JSON written is strict JSON."""
from __future__ import annotations

from pathlib import Path

import pytest

from edgekd.core.errors import OutputError
from edgekd.core.fileio import writable_file, write_json_atomic, write_text_atomic


def test_atomic_write_below_a_file_is_one_error_naming_the_path(tmp_path):
    (tmp_path / "file.txt").write_text("not a folder")
    target = tmp_path / "file.txt" / "sub" / "report.json"
    with pytest.raises(OutputError, match=f"{target}: cannot write .*pick a writable location"):
        write_json_atomic(target, {"a": 1})


def test_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    from pathlib import Path

    def full_disk(self, *_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OutputError, match="report.md: cannot write \\(No space left on device\\)"):
        write_text_atomic(tmp_path / "report.md", "x")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_writable_file_refuses_a_folder(tmp_path):
    with pytest.raises(OutputError, match="is a folder; give --json a file path"):
        writable_file(tmp_path, "--json")


def test_json_is_strict_non_finite_floats_become_null(tmp_path):
    import json

    payload = {"final_loss": float("nan"), "rows": [{"p50": float("inf")}, (1.5, float("-inf"))], "ok": 2.0}
    text = write_json_atomic(tmp_path / "m.json", payload).read_text()
    assert "NaN" not in text and "Infinity" not in text
    strict = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))
    assert strict == {"final_loss": None, "rows": [{"p50": None}, [1.5, None]], "ok": 2.0}


def test_numpy_values_are_written_as_json_numbers(tmp_path):
    import json

    import numpy as np

    payload = {"top1": np.float32(0.5), "n": np.int64(3), "nan": np.float32("nan"), "v": np.array([1.0, np.inf])}
    assert json.loads(write_json_atomic(tmp_path / "m.json", payload).read_text()) == \
        {"top1": 0.5, "n": 3, "nan": None, "v": [1.0, None]}


def test_a_killed_writers_temporary_files_are_removed_and_nothing_else(tmp_path):
    """Trial defect (session 12): kill -9 mid-write left .student-fp32.onnx.kwvcx6as.tmp beside the model for good;
    the next run, holding the folder's lock, removes atomic_path's leftovers and only them."""
    import tempfile

    from edgekd.core.fileio import remove_stray_temporaries

    (tmp_path / "03-export").mkdir()
    # named as atomic_path names them (mkstemp beside the target), left by a process killed mid-write
    stray = Path(tempfile.mkstemp(prefix=".student-fp32.onnx.", suffix=".tmp", dir=tmp_path / "03-export")[1])
    kept = [tmp_path / "notes.tmp", tmp_path / ".hidden", tmp_path / "03-export" / "student-fp32.onnx"]
    for path in kept:
        path.write_text("mine")
    assert remove_stray_temporaries(tmp_path) == [stray]
    assert not stray.exists() and all(path.exists() for path in kept)
