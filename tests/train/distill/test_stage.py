"""The teachers and distill stages end to end on a tiny digits config (single process)."""
import shutil

import pytest

from edgekd.core.errors import ConfigError
from edgekd.pipeline.config import load_config
from edgekd.pipeline.runner import run_pipeline


def _run(path, out, teachers_run):
    """The distill stage in a copy of a run whose teachers are trained (the teachers section is unchanged)."""
    if not out.exists():
        shutil.copytree(teachers_run, out)
    return run_pipeline(load_config(path), path, out, only=["distill"], force=True, log=lambda _m: None)


def _distill(ctx):
    return ctx.manifest.metrics("distill")


def test_second_run_hits_the_teacher_cache_and_records_phases(distill_config, tmp_path, trained_teachers):
    path = distill_config(finetune_epochs=1)
    first = _distill(_run(path, tmp_path / "a", trained_teachers))
    assert first["teacher_cache"]["misses"] == 2 and first["teacher_cache"]["hits"] == 0
    assert set(first["phases"]) == {"distill", "finetune"}
    assert first["phases"]["finetune"]["epochs"] == 1 and first["phases"]["distill"]["images_per_second"] > 0
    second = _distill(_run(path, tmp_path / "a", trained_teachers))
    assert second["teacher_cache"]["hits"] == 2 and second["teacher_cache"]["misses"] == 0
    assert second["teacher_cache"]["teacher_forward_seconds_saved"] > 0
    assert second["test_top1"] > 0.2  # chance is 0.1; two epochs on 300 images


def test_alpha_zero_trains_from_scratch_without_teachers(distill_config, tmp_path, trained_teachers):
    metrics = _distill(_run(distill_config(alpha=0.0), tmp_path / "s", trained_teachers))
    assert "scratch" in metrics["phases"] and "teacher_cache" not in metrics


def test_unlabeled_transfer_with_hints_and_replayed_augmentation(distill_config, tmp_path, trained_teachers):
    path = distill_config(use_labels=False, alpha=1.0, hints=[{"student": "features.1", "teacher": "features.1", "teacher_index": 0}],
                        augment={"shift": 1, "flip": False, "teachers": "replay"})
    metrics = _distill(_run(path, tmp_path / "h", trained_teachers))
    assert metrics["loss"]["labels"] is False and metrics["loss"]["hints"]
    assert metrics["teacher_cache"]["mode"] == "replay" and metrics["teacher_cache"]["entries"] == 2 * 2  # teachers x epochs


def test_live_teachers_with_augmentation(distill_config, tmp_path, trained_teachers):
    metrics = _distill(_run(distill_config(augment={"shift": 1, "teachers": "live"}), tmp_path / "l", trained_teachers))
    assert metrics["teacher_cache"]["mode"] == "live" and metrics["test_top1"] > 0


def test_unknown_hint_layer_is_one_clear_error(distill_config, tmp_path, trained_teachers):
    path = distill_config(hints=[{"student": "features.99", "teacher": "features.1"}])
    with pytest.raises(ConfigError, match=r"distill.hints\[0\].student 'features.99'"):
        _run(path, tmp_path / "e", trained_teachers)


def test_unlabeled_needs_a_teacher_signal(distill_config):
    with pytest.raises(ConfigError, match="use_labels"):
        load_config(distill_config(alpha=0.0, use_labels=False))


def test_a_bad_hint_stops_the_run_before_any_teacher_trains(distill_config, tmp_path):
    path = distill_config(hints=[{"student": "features.1", "teacher": "features.99"}])
    with pytest.raises(ConfigError, match=r"distill.hints\[0\].teacher 'features.99': the model has no such module"):
        run_pipeline(load_config(path), path, tmp_path / "run", log=lambda _m: None)
    assert not list((tmp_path / "run").rglob("teacher-*.pt"))


def test_decoupled_kd_trains_and_is_recorded(distill_config, tmp_path, trained_teachers):
    metrics = _distill(_run(distill_config(dkd={"nontarget_weight": 4.0}), tmp_path / "d", trained_teachers))
    assert metrics["loss"]["kind"] == "dkd" and metrics["loss"]["dkd"] == {"target_weight": 1.0, "nontarget_weight": 4.0}
    assert metrics["test_top1"] > 0.2  # chance is 0.1


@pytest.mark.parametrize("extra, message", [({"use_labels": False}, "distill.dkd splits the soft term at each image's label"),
                                            ({"logit_standardize": True}, "choose one of the two soft losses")])
def test_decoupled_kd_refuses_what_it_cannot_combine_with(distill_config, extra, message):
    with pytest.raises(ConfigError, match=message):
        load_config(distill_config(dkd={}, **extra))
