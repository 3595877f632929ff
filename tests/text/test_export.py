"""A tiny BERT classifier through ONNX (dynamic batch and sequence) and onnxruntime's dynamic int8."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")

from edgekd.quant.host import saturates_8bit_products  # noqa: E402
from edgekd.text import export, models  # noqa: E402

pytestmark = pytest.mark.slow  # export, fusion and int8: about 50 s on 2 cores
VOCAB, LABELS, MAX_LENGTH = 60, 4, 24


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = models.classifier(models.config(VOCAB, LABELS, models.Size(hidden=32, layers=2, heads=2, intermediate=64),
                                            max_length=MAX_LENGTH, dropout=0.0)).eval()
    with torch.no_grad():  # spread the logits: a random BERT's are all near 0, where any noise flips the top-1
        model.classifier.weight.mul_(40.0)
    folder = tmp_path_factory.mktemp("text-export")
    return model, export.export(model, folder / "model.onnx", max_length=MAX_LENGTH)


def _inputs(batch: int, length: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, VOCAB, size=(batch, length))
    mask = np.ones((batch, length), dtype=np.int64)
    for row in range(batch):  # padded tails of different lengths, as a tokenizer writes them
        real = rng.integers(2, length + 1)
        ids[row, real:], mask[row, real:] = 0, 0
    return {"input_ids": ids, "attention_mask": mask}


def test_graph_has_named_inputs_with_dynamic_batch_and_sequence(exported):
    session = export.session(exported[1])
    inputs = {i.name: i.shape for i in session.get_inputs()}
    assert list(inputs) == ["input_ids", "attention_mask"] and [o.name for o in session.get_outputs()] == ["logits"]
    assert all(isinstance(dim, str) for shape in inputs.values() for dim in shape), inputs  # symbolic, not fixed


@pytest.mark.parametrize("batch, length", [(1, 5), (3, 24), (7, 13)])
def test_onnx_matches_pytorch_at_other_batch_and_sequence_sizes(exported, batch, length):
    model, path = exported
    result = export.compare(model, path, _inputs(batch, length, seed=batch))
    assert result["max_abs_error"] < 1e-4 and result["top1_agreement"] == 1.0, result


def test_export_fuses_attention_for_onnxruntime_and_unfused_is_plain_onnx(exported, tmp_path):
    model, path = exported
    # One Attention per layer and the embeddings' sum and norm in one node: what int8 turns into QAttention.
    assert export.fused_operators(path) == {"EmbedLayerNormalization": 1, "Attention": 2, "SkipLayerNormalization": 4,
                                            "BiasGelu": 2}
    plain = export.export(model, tmp_path / "plain.onnx", max_length=MAX_LENGTH, fuse=False)
    import onnx

    assert {node.domain for node in onnx.load(str(plain)).graph.node} <= {"", "ai.onnx"}  # standard operators only
    result = export.compare(model, plain, _inputs(3, 11, seed=3))
    assert result["max_abs_error"] < 1e-4 and result["top1_agreement"] == 1.0, result


def test_dynamic_int8_runs_and_agrees_with_fp32(exported, tmp_path):
    model, path = exported
    # 7-bit weights where this CPU's int8 kernels saturate 8-bit products (no VNNI), as edgekd's int8 does.
    int8 = export.quantize_dynamic_int8(path, tmp_path / "model.int8.onnx", reduce_range=saturates_8bit_products())
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(int8)).graph
    assert {"DynamicQuantizeLinear", "MatMulInteger", "QAttention"} <= {node.op_type for node in graph.node}  # really quantized
    # Weight elements stored in 8 bits, embeddings (Gather) included. Not the file size: a model this tiny is
    # mostly graph structure, not weights.
    sizes = {t.name: (t.data_type, numpy_helper.to_array(t).size) for t in graph.initializer}
    eight_bit = sum(n for kind, n in sizes.values() if kind in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8))
    assert eight_bit > 0.95 * sum(n for _, n in sizes.values()), sizes
    inputs = _inputs(64, 16, seed=1)
    fp32, quantized = export.run(path, inputs), export.run(int8, inputs)
    spread = fp32.max() - fp32.min()
    assert np.abs(quantized - fp32).max() < 0.05 * spread, (np.abs(quantized - fp32).max(), spread)
    # Top-1 agreement on decisions that are not near-ties: a random model's logits tie often, and which near-ties
    # int8 flips depends on the CPU's kernels (8-bit weights with VNNI, 7-bit without: 60 of 64 agreed on one VNNI
    # CPU). An error under 5% of the spread cannot flip a margin over 10% of it, so every such decision must agree.
    ranked = np.sort(fp32, axis=-1)
    clear = ranked[:, -1] - ranked[:, -2] > 0.1 * spread
    agree = quantized.argmax(-1) == fp32.argmax(-1)
    assert clear.mean() > 0.5 and agree[clear].all() and agree.mean() >= 0.9, (clear.mean(), agree.mean())


def test_static_qdq_int8_is_calibrated_and_agrees_with_fp32(exported, tmp_path, monkeypatch):
    model, path = exported
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)  # onnxruntime's shape inference may dump files into the working directory
    calibration = [_inputs(16, 16, seed=10 + i) for i in range(4)]
    int8 = export.quantize_static_int8(path, tmp_path / "model.qdq.onnx", calibration, reduce_range=saturates_8bit_products())
    import onnx

    ops = {node.op_type for node in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and "DynamicQuantizeLinear" not in ops  # static, not dynamic
    inputs = _inputs(64, 16, seed=1)
    fp32, quantized = export.run(path, inputs), export.run(int8, inputs)
    assert np.abs(quantized - fp32).max() < 0.05 * (fp32.max() - fp32.min())
    assert (quantized.argmax(-1) == fp32.argmax(-1)).mean() >= 0.95
    with pytest.raises(Exception, match="calibration batches"):
        export.quantize_static_int8(path, tmp_path / "none.onnx", [], reduce_range=True)
    assert list(workdir.iterdir()) == []


def test_fusing_a_small_vocabulary_logs_nothing_of_onnxruntimes_own(tmp_path, caplog):
    """Trial defect (session 13): a 9-token vocabulary printed onnxruntime's optimizer line "word_embedding_table ...
    size 9 <= position_embedding_table ... size 24" into the run's output: its fusion modules log under top-level
    names (fusion_embedlayer), which the quieting of `onnxruntime.transformers` missed."""
    import logging

    model = models.classifier(models.config(9, LABELS, models.Size(hidden=32, layers=1, heads=2, intermediate=64),
                                            max_length=MAX_LENGTH, dropout=0.0)).eval()
    with caplog.at_level(logging.INFO):
        export.export(model, tmp_path / "small.onnx", max_length=MAX_LENGTH)
    assert not [record.getMessage() for record in caplog.records if record.levelno < logging.ERROR]
    assert logging.getLogger("fusion_embedlayer").level == logging.NOTSET  # restored afterwards
