"""The winner's curse: a search that keeps whichever int8 model passes on the validation samples keeps the one those
samples flatter. rec intel-cpu in benchmarks/third_party.py passed its 1-point limit on validation and then lost
points on the test split. The search now judges on part of the validation split, and when it chose among models the
compile stage judges its targets' candidates on the samples it never saw (quantize.confirm_fraction)."""
from __future__ import annotations

import numpy as np
import pytest

from edgekd.data.datasets import Split
from edgekd.pipeline.validation_split import confirm_mask, part


def test_half_the_samples_are_held_back_evenly():
    mask = confirm_mask(10, 0.5)
    assert mask.sum() == 5 and list(np.flatnonzero(mask)) == [1, 3, 5, 7, 9]
    assert confirm_mask(1000, 0.25).sum() == 250
    assert np.abs(np.diff(np.flatnonzero(confirm_mask(1000, 0.25))) - 4).max() == 0  # spread, not a block


@pytest.mark.parametrize("samples, fraction", [(10, 0.0), (1, 0.5), (3, 0.2), (0, 0.5)])
def test_nothing_is_held_back_when_no_sample_or_no_search_sample_would_be_left(samples, fraction):
    assert not confirm_mask(samples, fraction).any()


def test_a_part_takes_the_same_rows_of_every_input():
    split = Split({"a": np.arange(6), "b": np.arange(6) * 10}, np.arange(6) + 100)
    taken = part(split, np.array([1, 4]))
    assert list(taken.x["a"]) == [1, 4] and list(taken.x["b"]) == [10, 40] and list(taken.y) == [101, 104]


def test_a_searched_int8_model_is_judged_on_the_held_back_samples(tmp_path, tiny_config, write_config, monkeypatch):
    """intel-cpu's runtime breaks the budget with the first model (faked), so the search keeps a node in float: the
    compile stage then judges every intel-cpu candidate on the held-back half, never on the half the search used."""
    pytest.importorskip("torch")
    pytest.importorskip("openvino")
    import edgekd.pipeline.target_accuracy as target_accuracy
    from edgekd.pipeline.records import CompileRecord, QuantizeRecord, read_record
    from edgekd.pipeline.runner import run_from_file

    seen = []

    def fake_drops(ctx, profiles, int8_onnx, fp32_val_top1, input_spec, val):
        seen.append(len(val.y))
        return {"intel-cpu": {"runtime": "openvino", "split": "validation", "val_top1": 0.5,
                              "val_drop": 5.0 if len(seen) == 1 else 0.0}}

    monkeypatch.setattr(target_accuracy, "runtime_drops", fake_drops)
    tiny_config.update(targets=["intel-cpu"], gate={"reference": "student_fp32", "max_drop": 2.0})
    ctx = run_from_file(str(write_config(tiny_config)), str(tmp_path / "run"),
                        only=["teachers", "distill", "export", "quantize", "compile"])
    whole = len(ctx.dataset.val.y)
    recipe = read_record(ctx.manifest, QuantizeRecord).recipes["openvino-nncf"]
    split = recipe["validation_split"]
    assert recipe["searched"] and split["search_samples"] + split["confirm_samples"] == whole
    assert set(seen) == {split["search_samples"]}  # the search never judged on the held-back samples
    rows = read_record(ctx.manifest, CompileRecord).targets["intel-cpu"].candidates
    assert {r["val_samples"] for r in rows} == {split["confirm_samples"]}
    manifest = (tmp_path / "run" / "bundle" / "intel-cpu" / "manifest.json").read_text()
    assert '"judged_on_held_back": true' in manifest


def test_a_first_model_that_passes_is_judged_on_the_whole_split(tmp_path, tiny_config, write_config):
    pytest.importorskip("torch")
    from edgekd.pipeline.records import CompileRecord, QuantizeRecord, read_record
    from edgekd.pipeline.runner import run_from_file

    tiny_config.update(targets=["x86-cpu"])  # max_drop 100: nothing to search for
    ctx = run_from_file(str(write_config(tiny_config)), str(tmp_path / "run"),
                        only=["teachers", "distill", "export", "quantize", "compile"])
    recipe = next(iter(read_record(ctx.manifest, QuantizeRecord).recipes.values()))
    assert "searched" not in recipe
    rows = read_record(ctx.manifest, CompileRecord).targets["x86-cpu"].candidates
    assert {r["val_samples"] for r in rows} == {len(ctx.dataset.val.y)}
