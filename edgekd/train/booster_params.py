"""LightGBM's and XGBoost's `params`, checked against the libraries' own parameter lists before anything is fitted.

scikit-learn estimators refuse an unknown keyword; LGBMClassifier and XGBClassifier take **kwargs and pass them on to
the booster, which ignores a typo (LightGBM silently with verbose -1, XGBoost with a UserWarning after the fit has
started): `n_estimator: 20` would fit the default 100 trees. So a key neither the scikit-learn wrapper nor the
booster knows is refused here with one line, as a scikit-learn typo is.
"""
from __future__ import annotations

import difflib
import re
import warnings

from edgekd.core.errors import ConfigError


def check_booster_params(kind: str, cls, params: dict, where: str) -> None:
    """ConfigError naming the first key of `params` that `cls` (LGBMClassifier or XGBClassifier) would not use."""
    wrapper = set(cls().get_params())  # the scikit-learn wrapper's own keywords (n_estimators, max_depth, ...)
    extra = [key for key in params if key not in wrapper]
    if not extra:
        return
    unused = _lightgbm_unknown(extra) if kind == "lightgbm" else _xgboost_unused(cls, params, extra)
    if unused:
        known = sorted(wrapper | (_lightgbm_names() if kind == "lightgbm" else set()))
        named = ", ".join(_with_suggestion(key, known) for key in unused)
        raise ConfigError(f"{where}.params: {cls.__name__} has no parameter {named}; see the {kind} documentation for the "
                          "parameters it takes")


def _with_suggestion(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f"'{key}' (did you mean {close[0]}?)" if close else f"'{key}'"


def _lightgbm_names() -> set[str]:
    """Every booster parameter name and alias LightGBM knows. It comes from the library itself (the C API's
    LGBM_DumpParamAliases, which the Python package wraps in a private helper): a list written here would fall behind
    new releases. Empty if a release moves the helper: then nothing is refused rather than everything."""
    try:
        from lightgbm.basic import _ConfigAliases

        aliases = _ConfigAliases._get_all_param_aliases()
    except (ImportError, AttributeError):
        return set()
    return {name for names in aliases.values() for name in names}


def _lightgbm_unknown(keys: list[str]) -> list[str]:
    names = _lightgbm_names()
    return [key for key in keys if key not in names] if names else []


# XGBoost's own validation (validate_parameters, on by default) warns "Parameters: { "max_dept", ... } are not used."
# at the first training step; it has no list to ask beforehand, so one boosting round on two rows runs it.
_UNUSED = re.compile(r"Parameters: \{(.*?)\} (?:are|is) not used", re.S)


def _xgboost_unused(cls, params: dict, keys: list[str]) -> list[str]:
    import numpy as np
    import xgboost

    booster = {k: v for k, v in cls(**params).get_xgb_params().items() if v is not None}
    if str(booster.get("objective", "")).startswith("multi:"):
        booster["num_class"] = 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            xgboost.train(booster, xgboost.DMatrix(np.array([[0.0], [1.0]]), label=[0, 1]), num_boost_round=1)
        except xgboost.core.XGBoostError:  # a bad value, not a bad name: the real fit reports it with its own message
            return []
    found = [name for w in caught for match in _UNUSED.finditer(str(w.message)) for name in re.findall(r'"([^"]+)"', match.group(1))]
    return [key for key in keys if key in found]
