"""task.output: the task metric scores the output the config names, not always the first."""
from __future__ import annotations

import numpy as np
import pytest

from edgekd.core.errors import ConfigError


def _state_first(path):
    """The Silero-like graph with its outputs listed state first: the speech probability is the second output."""
    import onnx

    from tests.pipeline.test_fidelity_data import _silero_like

    model = onnx.load(str(_silero_like(path)))
    outputs = list(model.graph.output)[::-1]
    del model.graph.output[:]
    model.graph.output.extend(outputs)
    onnx.save(model, str(path))
    assert [o.name for o in model.graph.output] == ["stateN", "output"]
    return path


def _data(tmp_path, count=60):
    from tests.pipeline.test_fidelity_data import _vad_arrays

    np.savez(tmp_path / "d.npz", **_vad_arrays(count))
    return tmp_path / "d.npz"


def test_the_named_output_is_the_one_scored_everywhere(tmp_path):
    from edgekd import api
    from edgekd.device.bundle import load_bundle

    model, data = _state_first(tmp_path / "m.onnx"), _data(tmp_path)
    ctx = api.ship(model, data, targets=["x86-cpu"], out=tmp_path / "run", metric="speech_f1", output="output", max_drop=100.0)
    manifest, artifact = load_bundle(tmp_path / "run" / "bundle" / "x86-cpu")
    import onnx

    assert [o.name for o in onnx.load(str(artifact.root / artifact.main)).graph.output][0] == "output"
    assert ctx.manifest.stage("distill")["metrics"]["scored_output_moved_first"] == "output"


def test_without_a_name_the_first_output_is_scored_and_says_why_it_cannot_be(tmp_path):
    from edgekd import api

    model, data = _state_first(tmp_path / "m.onnx"), _data(tmp_path)
    with pytest.raises(ConfigError, match=r"its output \(batch, 2, 16\) cannot be scored by task.metric speech_f1"):
        api.ship(model, data, targets=["x86-cpu"], out=tmp_path / "run", metric="speech_f1", max_drop=100.0)


def test_an_unknown_output_name_is_one_line_naming_the_key(tmp_path):
    from edgekd import api

    model, data = _state_first(tmp_path / "m.onnx"), _data(tmp_path)
    with pytest.raises(ConfigError, match=r"task.output 'prob': the model .* has no output of that name \(its outputs: "
                                          r"stateN, output\)"):
        api.ship(model, data, targets=["x86-cpu"], out=tmp_path / "run", metric="speech_f1", output="prob")
