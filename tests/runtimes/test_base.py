"""Artifact.from_json: what a manifest records is loaded only from inside the artifact folder."""
from __future__ import annotations

import pytest

from edgekd.core.errors import ArtifactError
from edgekd.runtimes.base import Artifact

RECORD = {"backend": "ort", "precision": "fp32", "main": "model.onnx", "files": ["model.onnx"]}


def test_round_trip(tmp_path):
    artifact = Artifact.from_json(RECORD, tmp_path)
    assert artifact.root == tmp_path and Artifact.from_json(artifact.to_json(), tmp_path) == artifact


@pytest.mark.parametrize("field,value", [("main", "../other.onnx"), ("main", "/etc/passwd"),
                                         ("files", ["model.onnx", "a/../../b.bin"])])
def test_paths_leaving_the_folder_are_refused(tmp_path, field, value):
    with pytest.raises(ArtifactError, match="not a path inside the artifact folder"):
        Artifact.from_json({**RECORD, field: value}, tmp_path)


def test_missing_fields_are_one_clear_error(tmp_path):
    with pytest.raises(ArtifactError, match="lacks main, files"):
        Artifact.from_json({"backend": "ort", "precision": "fp32"}, tmp_path)
