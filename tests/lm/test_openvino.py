"""The exported decoder as OpenVINO IR: fp32 against onnxruntime and PyTorch, NNCF-compressed 8- and 4-bit
weights close to it, generation and perplexity through the shared decoder interface. One export serves the module."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edgekd.core.errors import ArtifactError, ConfigError
from tests.blocking import BLOCK_TORCH

pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")
pytest.importorskip("nncf")
ov = pytest.importorskip("openvino")
torch = pytest.importorskip("torch")

from edgekd.lang.generate import generate  # noqa: E402
from edgekd.lang.perplexity import onnx_perplexity  # noqa: E402
from edgekd.lm.export import _FlatCacheDecoder, example_inputs, export_decoder  # noqa: E402
from edgekd.lm.models import LMShape, build_lm, gpt2_config, torch_greedy  # noqa: E402
from edgekd.lm.training import torch_perplexity  # noqa: E402
from edgekd.runtimes.openvino import OpenVinoDecoder  # noqa: E402
from edgekd.runtimes.openvino_convert import Compression, convert_decoder  # noqa: E402
from edgekd.runtimes.ort import OnnxDecoder  # noqa: E402
from edgekd.runtimes.registry import load_decoder  # noqa: E402

PROMPTS = [[1, 2, 3], [17], [250, 4, 99, 123, 7, 7, 8]]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lm-ov")
    model = build_lm(gpt2_config(300, LMShape(layers=2, width=32, heads=2, context=48), eos_id=0), seed=0)
    onnx_path = export_decoder(model, folder / "decoder.onnx")
    return model, onnx_path, convert_decoder(onnx_path, folder / "ir" / "decoder.xml")


def _step_all(decoder, inputs) -> list[np.ndarray]:
    """Every output (logits, then the grown cache) of one batch-1 step, fed the same tensors as PyTorch."""
    ids, _, _, *cache = (tensor.numpy() for tensor in inputs)
    logits, present = decoder.step(ids[0], cache)
    return [logits[None], *present]


def test_fp32_ir_matches_pytorch_and_onnxruntime(exported):
    model, onnx_path, xml = exported
    assert xml.with_suffix(".bin").is_file() and not list(xml.parent.glob(".staging-*"))
    ir, onnx = OpenVinoDecoder(xml), OnnxDecoder(onnx_path)
    assert (ir.heads, ir.head_size, ir.context, ir.past_names) == (2, 16, 48, onnx.past_names)
    wrapper = _FlatCacheDecoder(model.eval())
    for seq, past in ((4, 0), (3, 6), (1, 9)):
        inputs = example_inputs(model.config, 1, seq, past, seed=past)
        with torch.no_grad():
            expected = [tensor.numpy() for tensor in wrapper(*inputs)]
        got, from_ort = _step_all(ir, inputs), _step_all(onnx, inputs)
        assert max(float(np.abs(a - b).max()) for a, b in zip(got, expected)) < 1e-4
        assert max(float(np.abs(a - b).max()) for a, b in zip(got, from_ort)) < 1e-4


def test_fp32_ir_generates_and_scores_like_pytorch(exported):
    model, _, xml = exported
    decoder = load_decoder(xml)
    assert isinstance(decoder, OpenVinoDecoder)
    for prompt in PROMPTS:
        assert generate(decoder, prompt, 12).tokens == torch_greedy(model, prompt, 12), prompt
    blocks = np.random.default_rng(0).integers(0, 300, size=(4, 20))
    assert onnx_perplexity(decoder, blocks) == pytest.approx(torch_perplexity(model, blocks, batch_size=2), rel=1e-5)
    with pytest.raises(ConfigError, match="exceed the model's context of 48"):
        generate(decoder, list(range(40)), 10)


def _weight_types(xml) -> set[str]:
    model = ov.Core().read_model(str(xml))
    return {op.get_element_type().get_type_name() for op in model.get_ordered_ops() if op.get_type_name() == "Constant"}


@pytest.mark.parametrize("method, compression, storage, bound", [
    ("ov_int8", Compression(), "u8", 0.02),
    ("ov_int4", Compression("sym", group_size=16), "i4", 0.15),  # NNCF 3.4 stores INT4_SYM as i4, no zero point
    ("ov_int4", Compression(), "i4", 0.15),  # the group size from the width (32 here)
    ("ov_int4", Compression("asym", group_size=16, ratio=0.5), "u4", 0.15),
])
def test_compressed_ir_stays_close_and_generates(exported, tmp_path, method, compression, storage, bound):
    _, _, fp32_xml = exported
    xml = convert_decoder(exported[1], tmp_path / f"{method}.xml", method, compression)
    assert storage in _weight_types(xml) and storage not in _weight_types(fp32_xml)
    assert xml.with_suffix(".bin").stat().st_size < 0.5 * fp32_xml.with_suffix(".bin").stat().st_size
    blocks = np.random.default_rng(1).integers(0, 300, size=(4, 24))
    fp32, low = onnx_perplexity(OpenVinoDecoder(fp32_xml), blocks), onnx_perplexity(OpenVinoDecoder(xml), blocks)
    assert abs(low / fp32 - 1) < bound, (low, fp32)
    tokens = generate(OpenVinoDecoder(xml, threads=1), PROMPTS[0], 8).tokens
    assert len(tokens) == 8 and all(0 <= t < 300 for t in tokens)


def test_bad_inputs_get_one_line_and_leave_nothing_behind(exported, tmp_path):
    _, onnx_path, xml = exported
    with pytest.raises(ArtifactError, match="missing.onnx: decoder ONNX file not found"):
        convert_decoder(tmp_path / "missing.onnx", tmp_path / "out.xml")
    with pytest.raises(ConfigError, match="unknown method 'ov_int3'"):
        convert_decoder(onnx_path, tmp_path / "out.xml", "ov_int3")
    with pytest.raises(ConfigError, match="named .xml"):
        convert_decoder(onnx_path, tmp_path / "out.onnx")
    with pytest.raises(ConfigError, match="group_size 24"):
        convert_decoder(onnx_path, tmp_path / "out.xml", "ov_int4", Compression(group_size=24))
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(ArtifactError, match="junk.onnx: OpenVINO cannot convert it"):
        convert_decoder(tmp_path / "junk.onnx", tmp_path / "out.xml")
    assert not list(tmp_path.glob("out*")) and not list(tmp_path.glob(".staging-*"))
    with pytest.raises(ArtifactError, match="missing.xml: OpenVINO IR .* not found"):
        OpenVinoDecoder(tmp_path / "missing.xml")
    (tmp_path / "junk.xml").write_text("<net>")
    (tmp_path / "junk.bin").write_bytes(b"")
    with pytest.raises(ArtifactError, match="junk.xml: OpenVINO cannot load it"):
        OpenVinoDecoder(tmp_path / "junk.xml")


def test_a_model_without_a_cache_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(tmp_path / "image.onnx"))
    with pytest.raises(ArtifactError, match="image.onnx: not a decoder with a KV cache"):
        convert_decoder(tmp_path / "image.onnx", tmp_path / "image.xml")


def test_ir_generation_runs_with_torch_blocked(exported):
    _, _, xml = exported
    code = BLOCK_TORCH + textwrap.dedent(f"""
        from edgekd.lang.generate import generate
        from edgekd.runtimes.registry import load_decoder
        print(generate(load_decoder({str(xml)!r}), [1, 2, 3], 16).tokens)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(generate(OpenVinoDecoder(xml), [1, 2, 3], 16).tokens)


@pytest.mark.parametrize("width, group", [(224, 32), (256, 128), (192, 64), (48, 16)])
def test_default_group_size_is_the_largest_usual_one_dividing_the_width(tmp_path, width, group):
    import onnx
    from onnx import helper, numpy_helper

    from edgekd.runtimes.openvino_convert import default_group_size

    wpe = numpy_helper.from_array(np.zeros((8, width), np.float32), "model.transformer.wpe.weight")
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])], [wpe])
    onnx.save(helper.make_model(graph), str(tmp_path / "d.onnx"))
    assert default_group_size(tmp_path / "d.onnx") == group
