"""benchmarks/distill_fashion_mnist.py's epoch-time ratios: a run whose training rounds to 0 s (the --smoke sizes
on a quiet machine) gives no ratio and fails its check, instead of crashing the script (it once failed CI)."""
from __future__ import annotations

import pytest

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def script(load_benchmark):
    return load_benchmark("distill_fashion_mnist")


def test_a_zero_denominator_gives_no_ratio_and_fails_the_check(script):
    assert script._ratio(1.2, 1.0) == 1.2 and script._ratio(0.5, 0.0) is None
    assert script._at_most(1.2, 1.3) and not script._at_most(1.4, 1.3) and not script._at_most(None, 1.3)


def test_every_trial_names_real_distill_settings(script):
    """Each trial's settings must validate and take effect, found here rather than minutes into a --trials run."""
    from pydantic import ValidationError

    from edgekd.pipeline.config import load_config

    distill = load_config(script.CONFIG).distill
    for name, overrides in script.TRIALS:
        checked = script.distill_variant(distill, "kd", 0, overrides=script.trial_settings(overrides)).model_dump()
        assert (checked["dkd"] is None) == ("dkd" not in overrides), f"{name}: Hinton KD unless the trial names dkd"
        for key, value in overrides.items():
            expected = {**checked[key], **value} if isinstance(value, dict) else value  # a section: the keys given
            assert checked[key] == expected, name
    assert any(o.get("alpha") == 0.0 for _, o in script.TRIALS), "the trials need a scratch baseline"
    with pytest.raises(ValidationError):
        script.distill_variant(distill, "kd", 0, overrides={"temprature": 2.0})


def test_a_variant_sets_seed_and_alpha_and_epochs(script):
    from edgekd.pipeline.config import load_config

    distill = load_config(script.CONFIG).distill
    scratch = script.distill_variant(distill, "scratch", 3, epochs=2)
    assert (scratch.seed, scratch.alpha, scratch.train.epochs) == (3, 0.0, 2)
    assert script.distill_variant(distill, "kd", 3).alpha == distill.alpha


def test_a_partial_trials_run_keeps_the_earlier_rows_it_does_not_rerun(script, tmp_path):
    import json
    from types import SimpleNamespace

    from edgekd.core.environment import describe

    ctx = SimpleNamespace(config_path=script.CONFIG)
    names = [name for name, _ in script.TRIALS]
    earlier = {"config": script._shown(script.CONFIG), "seed": 0, "environment": {"cpu": describe()["cpu"]}, "ensemble_top1": 0.93,
               "trials": [{"name": name, "val_top1": 0.9} for name in names[:2]] + [{"name": "gone from TRIALS"}]}
    path = tmp_path / "trials.json"
    path.write_text(json.dumps(earlier))
    kept = script.earlier_trials(path, ctx, 0, keep={names[1]})
    assert [r["name"] for r in kept] == [names[0]]
    assert kept[0]["cpu_flags"] == describe()["cpu"]["flags"] and kept[0]["ensemble_top1"] == 0.93
    assert script.earlier_trials(path, ctx, 1, keep={names[1]}) == []  # another seed: nothing kept
    assert script.earlier_trials(path, ctx, 0, keep=set()) == []  # a full run replaces every row


def test_rows_from_another_cpu_are_kept_with_the_flags_they_ran_with(script, tmp_path):
    import json
    from types import SimpleNamespace

    ctx = SimpleNamespace(config_path=script.CONFIG)
    names = [name for name, _ in script.TRIALS]
    earlier = {"config": script._shown(script.CONFIG), "seed": 0, "ensemble_top1": 0.934,
               "environment": {"cpu": {"flags": ["made-up-isa"]}},
               "trials": [{"name": names[0], "val_top1": 0.9}, {"name": names[1], "cpu_flags": ["avx2"], "ensemble_top1": 0.92}]}
    path = tmp_path / "trials.json"
    path.write_text(json.dumps(earlier))
    kept = script.earlier_trials(path, ctx, 0, keep={names[2]})
    assert [(r["cpu_flags"], r["ensemble_top1"]) for r in kept] == [(["made-up-isa"], 0.934), (["avx2"], 0.92)]


def test_the_trials_dkd_is_the_yaml_recipe(script):
    from edgekd.pipeline.config import load_config

    dkd = load_config(script.CONFIG).distill.dkd
    assert {"target_weight": dkd.target_weight, "nontarget_weight": dkd.nontarget_weight} == script.DKD_YAML


def test_each_mode_trains_with_its_own_settings_and_trials_with_none(script):
    from edgekd.pipeline.config import load_config

    distill = load_config(script.CONFIG).distill
    for mode, train in script.MODE_TRAIN.items():
        chosen = script.distill_variant(distill, mode, 0, overrides=script.mode_settings(mode))
        assert all(getattr(chosen.train, key) == value for key, value in train.items())
    assert script.distill_variant(distill, "scratch", 0, overrides=script.mode_settings("scratch")).train == distill.train
