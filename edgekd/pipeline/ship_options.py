"""`edgekd ship` options checked before its pipeline file is written (pipeline/ship.py writes it): the MODEL is not a
pickle, --targets names at least one profile, and the data options (--color, --scale, --normalize) become data keys,
each refused in one line naming the option where --data is not of its kind (the data section's own check would name
the config key, which the user did not type)."""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Optional

from edgekd.core.errors import ConfigError
from edgekd.core.option_names import on_the_command_line, option_name, typed_on_the_command_line  # noqa: F401 (edgekd ship's, as before)
from edgekd.data.config import NORMALIZE_MODES

# Files that hold a pickle: loading one runs whatever code it names, so edgekd never opens one as a model.
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")

# The --data each option applies to: (data.source, how the message names it); others apply to any --data.
_OPTION_SOURCES = {"color": ("imagefolder", "an image folder"), "scale": ("npz", "an .npz file")}


# edgekd ship's options as api.ship names them: its messages name what the caller wrote, an argument from Python and an
# option from the command line (whose ship_cmd calls api.ship inside typed_on_the_command_line()). The checks are one.
API_NAMES = {"MODEL": "model", "--data": "data", "--checkpoint": "checkpoint", "--calibration": "calibration",
             "--targets": "targets", "--max-drop": "max_drop", "--out": "out", "--no-labels": "labels=False",
             "--metric": "metric", "--output": "output", "--color": "color", "--scale": "scale", "--normalize": "normalize",
             "--min-speedup": "min_speedup", "--max-size-kb": "max_size_kb"}


def given(option: str, value: Any = None, quoted: bool = True) -> str:
    """An option as the caller wrote it, with its value when given: "--data 'x.npz'" on the command line,
    "data='x.npz'" from Python (api.ship(data=...)); without a value the name alone ("--targets", "targets")."""
    return option_name(option, API_NAMES[option], value, quoted)


def check_model(model: str) -> None:
    """A pickle given as MODEL is refused, never loaded (as a name without ':' it would be read as a factory)."""
    if model.lower().endswith(PICKLE_SUFFIXES):
        raise ConfigError(f"{given('MODEL', model)}: a pickle, which edgekd never loads (unpickling runs any code it names); "
                          "export the model to ONNX and give the .onnx file, or give its factory (module:function) with "
                          "--checkpoint and its state_dict")


def target_list(targets: Optional[str | Sequence[str]]) -> Optional[list[str]]:
    """api.ship's targets as a list of names: "x86-cpu,intel-cpu" as --targets takes it (not one target per character),
    and a comma inside a list item too (["x86-cpu,arm64-cpu"] was one unknown target); None stays the default."""
    if targets is None:
        return None
    items = [targets] if isinstance(targets, str) else list(targets)
    return [name.strip() for item in items for name in str(item).split(",") if name.strip()]


def check_targets(targets: Optional[Sequence[str]]) -> None:
    """None: the default target; an empty list (`--targets ""`, `--targets ,`) names none and is refused, not defaulted."""
    if targets is not None and not [t for t in targets if str(t).strip()]:
        fix = ("give device profiles separated by commas (see `edgekd targets`), or leave --targets out for x86-cpu"
               if on_the_command_line() else  # from Python, in its own words: a list, and the argument left out
               "give a list of device profiles (see edgekd.api.targets()), or leave targets out (None) for x86-cpu")
        raise ConfigError(f"{given('--targets')}: no target named; {fix}")


def name_gate_limits(message: str) -> str:
    """The config's gate.max_drop (a bad max_drop, min_speedup or max_size_kb, as the pipeline file's validation says
    it) named as the caller wrote it: max_drop= from Python, --max-drop on the command line."""
    return re.sub(r"^(?:edgekd ship: )?gate\.(max_drop|min_speedup|max_size_kb)\b",
                  lambda match: given("--" + match.group(1).replace("_", "-")), message)


def normalize_option(value: Any) -> Any:
    """--normalize as data.normalize: dataset, none, imagenet, or MEAN/STD (one value for every channel, or one per
    channel separated by commas: 0.5/0.5 for a model that takes pixels in [-1, 1], as PaddleOCR's do); a dict
    {mean, std} from the API as it is (the data section checks it)."""
    if value is None or isinstance(value, dict) or value in NORMALIZE_MODES:
        return value
    mean, slash, std = str(value).partition("/")
    try:
        stats = {"mean": [float(v) for v in mean.split(",")], "std": [float(v) for v in std.split(",")]}
    except ValueError:
        stats = None
    if not slash or stats is None:
        raise ConfigError(f"{given('--normalize', value)}: give {', '.join(NORMALIZE_MODES)}, or MEAN/STD as the model was trained "
                          "with, one value for every channel or one per channel (0.5/0.5, or "
                          "0.485,0.456,0.406/0.229,0.224,0.225)")
    return stats


def data_options(config: dict[str, Any], data: str, **options: Optional[str]) -> dict[str, Any]:
    """`config` (ship_config's) with the given options as data keys."""
    source = config["data"]["source"]
    options["normalize"] = normalize_option(options.get("normalize"))
    chosen = {key: value for key, value in options.items() if value is not None}
    for key in chosen:
        needed, kind = _OPTION_SOURCES.get(key, (source, ""))
        if source != needed:
            raise ConfigError(f"{given('--' + key)}: applies to {kind} {given('--data')}, not to '{data}'; remove it")
    config["data"].update(chosen)
    return config
