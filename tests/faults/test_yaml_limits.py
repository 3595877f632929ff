"""YAML that PyYAML loads but that must not reach edgekd: alias bombs and keys given twice (issue 20, items 3, 7)."""
from __future__ import annotations

import time

import pytest
import yaml

from edgekd.core.errors import ConfigError
from edgekd.data.calibration import load_recipe
from edgekd.pipeline.config import load_config
from edgekd.runtimes import load_profile

from .helpers import TINY, assert_one_line_error, invoke


def _bomb(levels: int = 12, width: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "\n".join(lines)


def _config_text(**sections: str) -> str:
    return yaml.safe_dump(TINY, sort_keys=False) + "".join(sections.values())


def test_alias_bomb_in_model_kwargs_is_refused_at_load_within_seconds(tmp_path):
    bomb = "\n".join("  " + line for line in _bomb().splitlines())
    config = tmp_path / "bomb.yaml"
    text = _config_text().replace("student:\n  arch: mlp\n  width: 8\n",
                                  f"student:\n  arch: mlp\n  width: 8\n  kwargs:\n    bomb:\n  {bomb}\n")
    assert "bomb:" in text
    config.write_text(text, encoding="utf-8")
    started = time.perf_counter()
    message = assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "bomb.yaml", "aliases",
                                    "expand to more than")
    assert time.perf_counter() - started < 10, message
    assert not (tmp_path / "run").exists()  # refused before a run folder was made


@pytest.mark.parametrize("loader, kind", [(load_profile, "target profile"), (load_recipe, "calibration recipe")])
def test_every_yaml_edgekd_reads_refuses_alias_bombs(tmp_path, loader, kind):
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb() + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="aliases"):
        loader(str(path))


def test_recursive_alias_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text(_config_text() + "extra: &loop [1, *loop]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="recursive"):
        load_config(path)


def test_ordinary_anchors_and_merge_keys_still_load(tmp_path):
    path = tmp_path / "anchors.yaml"
    text = yaml.safe_dump({k: v for k, v in TINY.items() if k not in ("teachers", "distill")}, sort_keys=False)
    path.write_text(text + "teachers:\n  - {arch: mlp, width: 16, train: &train {epochs: 1, batch_size: 64, amp: 'off'}}\n"
                    "  - {arch: mlp, width: 8, train: {<<: *train, epochs: 2}}\ndistill: {train: *train}\n", encoding="utf-8")
    cfg = load_config(path)  # anchors, aliases and a merge with an overriding key load as before
    assert [t.train.epochs for t in cfg.teachers] == [1, 2] and cfg.distill.train.batch_size == 64


def test_duplicate_key_is_refused_with_both_lines(tmp_path):
    config = tmp_path / "dup.yaml"
    config.write_text(_config_text() + "", encoding="utf-8")
    text = config.read_text().replace("distill:\n", "distill:\n  alpha: 0.9\n  alpha: 0.0\n", 1)
    config.write_text(text, encoding="utf-8")
    line = text.splitlines().index("  alpha: 0.0") + 1
    assert_one_line_error(invoke("run", config, "--out", tmp_path / "run"), "dup.yaml", f"at line {line}",
                          "key 'alpha' appears twice", f"first at line {line - 1}")
    assert not (tmp_path / "run").exists()


def test_duplicate_top_level_section_is_refused(tmp_path):
    config = tmp_path / "dup.yaml"
    config.write_text(_config_text() + "seed: 3\n", encoding="utf-8")
    assert_one_line_error(invoke("run", config), "key 'seed' appears twice")
