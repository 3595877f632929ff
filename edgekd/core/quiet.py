"""Other libraries' own output kept out of edgekd's logs, where edgekd calls into them: edgekd shows progress itself
(core/progress.py), and a log should hold edgekd's lines only.

- NNCF logs each statistics pass at INFO (its logger, `nncf.set_log_level`) and draws its own rich progress bars
  ("Statistics collection", "Applying Fast Bias correction"), which NNCF offers no switch for: they draw on rich's
  global console, whose `quiet` flag drops them.
- torch logs `No CUDA runtime is found, using CUDA_HOME=...` (logger torch.utils.cpp_extension, at import) on any
  machine with a CUDA toolkit and no GPU. edgekd never builds torch C++ extensions; NNCF imports that module when it
  checks whether a model is a torch one, on every call, for ONNX and OpenVINO models too.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

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


def _rich_console():
    try:
        import rich
    except ImportError:  # an NNCF without rich draws no bars
        return None
    return rich.get_console()
