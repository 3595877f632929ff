"""Other libraries' own output kept out of edgekd's logs, where edgekd calls into them: edgekd shows progress itself
(core/progress.py), and a log should hold edgekd's lines only.

- NNCF logs each statistics pass at INFO (its logger, `nncf.set_log_level`) and draws its own rich progress bars
  ("Statistics collection", "Applying Fast Bias correction"), which NNCF offers no switch for: they draw on rich's
  global console, whose `quiet` flag drops them.
- torch logs `No CUDA runtime is found, using CUDA_HOME=...` (logger torch.utils.cpp_extension, at import) on any
  machine with a CUDA toolkit and no GPU. edgekd never builds torch C++ extensions; NNCF imports that module when it
  checks whether a model is a torch one, on every call, for ONNX and OpenVINO models too.
- onnxruntime's transformer optimizer logs each fusion at INFO and warns of graphs it finds unusual ("word_embedding_table
  ... size 9 <= position_embedding_table", a small vocabulary). Its fusion modules are imported as top-level modules
  (it puts its folder on sys.path), so their loggers are named `fusion_embedlayer` etc., not `onnxruntime.transformers.*`.
"""
from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CPP_EXTENSION_LOGGER = "torch.utils.cpp_extension"


def silence_cuda_home_warning() -> None:
    """Before anything imports torch.utils.cpp_extension: its CUDA_HOME warning concerns building C++ extensions,
    which edgekd never does (errors still show)."""
    logging.getLogger(CPP_EXTENSION_LOGGER).setLevel(logging.ERROR)


@contextmanager
def quiet_nncf() -> Iterator[None]:
    """Around a call into NNCF: its INFO lines and progress bars dropped, its warnings kept; restored afterwards."""
    silence_cuda_home_warning()
    nncf_logger = logging.getLogger("nncf")
    level = nncf_logger.level
    nncf_logger.setLevel(logging.WARNING)
    console = _rich_console()
    was_quiet = console.quiet if console is not None else None
    if console is not None:
        console.quiet = True
    try:
        yield
    finally:
        nncf_logger.setLevel(level)
        if console is not None:
            console.quiet = was_quiet


@contextmanager
def quiet_ort_transformers() -> Iterator[None]:
    """Around a call into onnxruntime.transformers' optimizer: the loggers of its modules (under whatever name they
    were imported) at ERROR, so only its errors show; their levels restored afterwards."""
    from onnxruntime.transformers import optimizer

    folder = Path(optimizer.__file__).resolve().parent
    names = ["onnxruntime.transformers"] + [name for name, module in list(sys.modules.items())
                                            if _module_folder(module) == folder]
    loggers = [logging.getLogger(name) for name in names]
    levels = [each.level for each in loggers]
    for each in loggers:
        each.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for each, level in zip(loggers, levels):
            each.setLevel(level)


def _module_folder(module) -> Path | None:
    where = getattr(module, "__file__", None)
    return Path(where).resolve().parent if where else None


def _rich_console():
    try:
        import rich
    except ImportError:  # an NNCF without rich draws no bars
        return None
    return rich.get_console()
