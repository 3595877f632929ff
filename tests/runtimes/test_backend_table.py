"""What the pipeline and the model families ask the one backend table (runtimes/registry.BACKENDS) instead of listing
backend names: which runtime a backend runs on, which backends run a language model's decoder and with which
quantization methods, and which backend opens a decoder file."""
from __future__ import annotations

import typing
from pathlib import Path

import pytest

from edgekd.core.errors import ArtifactError, TargetError
from edgekd.runtimes import get_backend
from edgekd.runtimes.registry import BACKENDS, backends_on, decoder_backend_for, decoder_backends, runtime_of


def test_each_backend_names_its_runtime_and_the_onnxruntime_ones_are_found_by_it():
    assert {name: runtime_of(name) for name in BACKENDS} == {"ort": "onnxruntime", "ort-arm64": "onnxruntime",
                                                            "openvino": "openvino", "tensorrt": "tensorrt"}
    assert backends_on("onnxruntime") == ["ort", "ort-arm64"] and backends_on("openvino") == ["openvino"]


def test_the_decoder_backends_and_their_methods_come_from_the_backends():
    assert decoder_backends() == ["ort", "ort-arm64", "openvino"]
    assert get_backend("ort-arm64").decoder_methods == get_backend("ort").decoder_methods == ("dynamic", "nbits8", "nbits4")
    assert get_backend("openvino").decoder_methods == ("ov_int8", "ov_int4") and get_backend("tensorrt").decoder_methods == ()


def test_the_lm_config_schema_names_every_decoder_method():
    """quant/config.DecoderMethod spells the methods out for the schema: it must be the backends' methods and none."""
    from edgekd.quant.config import DecoderMethod as Method

    methods = {m for name in decoder_backends() for m in get_backend(name).decoder_methods}
    assert set(typing.get_args(Method)) == methods | {"none"}


@pytest.mark.parametrize("name, runtime, backend", [
    ("model.onnx", None, "ort"), ("student-ov_int8.xml", None, "openvino"), ("model", None, "ort"),
    ("model.xml", "openvino", "openvino"), ("model.onnx", "onnxruntime", "ort")])
def test_a_decoder_file_goes_to_the_backend_of_its_recorded_runtime_or_of_its_kind_of_file(name, runtime, backend):
    assert decoder_backend_for(Path(name), runtime) == backend


def test_a_runtime_that_runs_no_decoder_is_refused_in_one_line():
    with pytest.raises(ArtifactError, match=r"model.plan: recorded runtime 'tensorrt' runs no language model decoder"):
        decoder_backend_for(Path("model.plan"), "tensorrt")
    with pytest.raises(TargetError, match="the tensorrt backend runs no language model decoder"):
        get_backend("tensorrt").decoder(Path("model.onnx"))


def test_a_decoders_files_are_named_by_its_backend(tmp_path):
    """What a bundle copies and a size counts: an IR's .bin beside its .xml, an ONNX decoder alone."""
    assert get_backend("openvino").decoder_files(tmp_path / "m.xml") == [tmp_path / "m.xml", tmp_path / "m.bin"]
    assert get_backend("ort").decoder_files(tmp_path / "m.onnx") == [tmp_path / "m.onnx"]
