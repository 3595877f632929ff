"""The exported decoder against PyTorch, generation with onnxruntime + numpy only, and its int8 versions.
One export (about 20 s) serves the module."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edgekd.core.errors import ArtifactError, ConfigError, DataError
from tests.blocking import BLOCK_TORCH

pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from edgekd.lang.generate import generate  # noqa: E402
from edgekd.lang.perplexity import onnx_perplexity  # noqa: E402
from edgekd.lm.export import check_against_torch, export_decoder, input_names, output_names  # noqa: E402
from edgekd.lm.models import LMShape, build_lm, gpt2_config, torch_greedy  # noqa: E402
from edgekd.lm.training import torch_perplexity  # noqa: E402
from edgekd.runtimes.decoder_quantize import quantize_decoder  # noqa: E402
from edgekd.runtimes.ort import OnnxDecoder  # noqa: E402

PROMPTS = [[1, 2, 3], [17], [250, 4, 99, 123, 7, 7, 8], [42, 42]]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = build_lm(gpt2_config(300, LMShape(layers=2, width=32, heads=2, context=48), eos_id=0), seed=0)
    path = export_decoder(model, tmp_path_factory.mktemp("lm") / "decoder.onnx")
    return model, path


def test_the_file_has_optimum_style_cache_inputs_and_outputs(exported):
    model, path = exported
    decoder = OnnxDecoder(path)
    assert [i.name for i in decoder.session.get_inputs()] == input_names(2)
    assert [o.name for o in decoder.session.get_outputs()] == output_names(2)
    assert (decoder.heads, decoder.head_size, decoder.context) == (2, 16, 48)
    assert check_against_torch(model, path) < 1e-4
    assert not list(path.parent.glob("*.data"))  # one self-contained file


def test_onnx_greedy_equals_pytorch_greedy_token_for_token(exported):
    model, path = exported
    decoder = OnnxDecoder(path)
    for prompt in PROMPTS:
        assert generate(decoder, prompt, 16).tokens == torch_greedy(model, prompt, 16), prompt


def test_timing_is_reported(exported):
    _, path = exported
    result = generate(OnnxDecoder(path, threads=1), PROMPTS[0], 10)
    timing = result.timing()
    assert timing["new_tokens"] == 10 and len(result.token_seconds) == 9
    assert timing["time_to_first_token_ms"] > 0 and 0 < timing["per_token_ms"]["p50"] <= timing["per_token_ms"]["p99"]
    assert timing["tokens_per_second"] == pytest.approx(9 / sum(result.token_seconds))


def test_top_k_sampling_is_seeded_and_stays_in_the_top_k(exported):
    _, path = exported
    decoder = OnnxDecoder(path)
    first = generate(decoder, PROMPTS[0], 12, top_k=5, temperature=1.5, seed=7)
    assert first.tokens == generate(decoder, PROMPTS[0], 12, top_k=5, temperature=1.5, seed=7).tokens
    assert first.tokens != generate(decoder, PROMPTS[0], 12, top_k=5, temperature=1.5, seed=8).tokens
    sequence = list(PROMPTS[0])
    for token in first.tokens:  # each sampled token was among the 5 most likely after what came before
        logits, _ = decoder.step(np.asarray(sequence), decoder.empty_cache())
        assert token in np.argsort(logits[-1])[-5:]
        sequence.append(token)
    assert generate(decoder, PROMPTS[0], 12, top_k=1).tokens == generate(decoder, PROMPTS[0], 12).tokens


def test_onnx_perplexity_equals_pytorch_perplexity(exported):
    model, path = exported
    blocks = np.random.default_rng(0).integers(0, 300, size=(5, 20))
    expected = torch_perplexity(model, blocks, batch_size=2)
    assert onnx_perplexity(OnnxDecoder(path), blocks) == pytest.approx(expected, rel=1e-5)
    assert 100 < expected < 1000  # a random model over 300 tokens: about uniform
    with pytest.raises(DataError, match="shape"):
        onnx_perplexity(OnnxDecoder(path), np.zeros((3, 1), dtype=np.int64))


def test_generation_stops_at_the_stop_token(exported):
    _, path = exported
    decoder = OnnxDecoder(path)
    tokens = generate(decoder, PROMPTS[0], 12).tokens
    stopped = generate(decoder, PROMPTS[0], 12, stop_id=tokens[3]).tokens
    assert stopped == tokens[: tokens.index(tokens[3]) + 1]


def test_bad_requests_and_files_get_one_line(exported, tmp_path):
    _, path = exported
    decoder = OnnxDecoder(path)
    with pytest.raises(ConfigError, match="exceed the model's context of 48"):
        generate(decoder, list(range(40)), 10)
    with pytest.raises(ConfigError, match="prompt is empty"):
        generate(decoder, [], 3)
    with pytest.raises(ConfigError, match="top_k 0"):
        generate(decoder, [1], 3, top_k=0)
    with pytest.raises(ArtifactError, match="not found"):
        OnnxDecoder(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(ArtifactError, match="junk.onnx: onnxruntime cannot load it"):
        OnnxDecoder(tmp_path / "junk.onnx")


@pytest.mark.parametrize("method, op", [("dynamic", "MatMulInteger"), ("nbits8", "MatMulNBits"), ("nbits4", "MatMulNBits")])
def test_int8_and_4bit_decoders_run_and_stay_close(exported, tmp_path, method, op):
    import onnx

    _, path = exported
    quantized = quantize_decoder(path, tmp_path / f"{method}.onnx", method)
    ops = [node.op_type for node in onnx.load(str(quantized)).graph.node]
    assert ops.count(op) == 2 * 4 + 1  # 4 linear layers per block, and the output layer
    if op == "MatMulNBits":  # int8 compute (accuracy_level 4), the fast kernels on x86
        levels = {a.i for n in onnx.load(str(quantized)).graph.node if n.op_type == op for a in n.attribute if a.name == "accuracy_level"}
        assert levels == {4}
    fp32, low = OnnxDecoder(path), OnnxDecoder(quantized)
    ids = np.asarray(PROMPTS[2])
    reference, _ = fp32.step(ids, fp32.empty_cache())
    got, _ = low.step(ids, low.empty_cache())
    assert np.isfinite(got).all()
    spread = float(reference.std())
    assert float(np.abs(got - reference).max()) < (0.5 if method == "nbits4" else 0.1) * spread
    assert len(generate(low, PROMPTS[0], 8).tokens) == 8
    with pytest.raises(ConfigError, match="unknown method"):
        quantize_decoder(path, tmp_path / "x.onnx", "int3")
    with pytest.raises(ArtifactError, match="missing.onnx: decoder ONNX file not found"):
        quantize_decoder(tmp_path / "missing.onnx", tmp_path / "x.onnx", method)


def test_generation_runs_with_torch_blocked(exported):
    """The device loop imports neither torch nor transformers: both fail to import in this child."""
    _, path = exported
    code = BLOCK_TORCH + textwrap.dedent(f"""
        from edgekd.lang.generate import generate
        from edgekd.runtimes.ort import OnnxDecoder
        from edgekd.lang.perplexity import onnx_perplexity
        print(generate(OnnxDecoder({str(path)!r}), [1, 2, 3], 16).tokens)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(generate(OnnxDecoder(path), [1, 2, 3], 16).tokens)


def test_the_onnxruntime_backend_quantizes_a_decoder_once_for_every_target_that_shares_the_file(exported, tmp_path):
    """Backend.quantize_decoder (issue 33: runtimes/ owns every quantizer): two targets on onnxruntime with the same
    method and options share one file, made once; 7-bit weights are named in the file; none writes nothing."""
    from edgekd.runtimes import get_backend
    from edgekd.runtimes.decoder import DecoderOptions

    _, path = exported
    made: dict = {}
    first = get_backend("ort").quantize_decoder(path, tmp_path, "dynamic", DecoderOptions(reduce_range=True), made)
    stamp = (tmp_path / first["file"]).stat().st_mtime_ns
    second = get_backend("ort-arm64").quantize_decoder(path, tmp_path, "dynamic", DecoderOptions(reduce_range=True), made)
    assert first == second and first["file"] == "student-dynamic-7bit.onnx" and first["reduce_range"] is True
    assert (tmp_path / first["file"]).stat().st_mtime_ns == stamp and list(made) == [tmp_path / first["file"]]
    nbits = get_backend("ort").quantize_decoder(path, tmp_path, "nbits8", DecoderOptions(reduce_range=True), made)
    assert nbits["file"] == "student-nbits8.onnx" and nbits["reduce_range"] is False  # 7-bit is dynamic int8's
    assert get_backend("ort").quantize_decoder(path, tmp_path, "none", DecoderOptions(), made) == \
        {"method": "none", "runtime": "onnxruntime"} and len(made) == 2


def test_a_backend_that_runs_no_decoder_refuses_to_quantize_one(exported, tmp_path):
    from edgekd.core.errors import TargetError
    from edgekd.runtimes import get_backend
    from edgekd.runtimes.decoder import DecoderOptions

    with pytest.raises(TargetError, match="tensorrt backend runs no language model decoder"):
        get_backend("tensorrt").quantize_decoder(exported[1], tmp_path, "dynamic", DecoderOptions(), {})
