"""One error family. The CLI prints any EdgeKDError as a single line and exits 2.

Every other exception escaping edgekd is a bug: the CLI exits 3 with one line (--debug shows the traceback).
"""
from __future__ import annotations


class EdgeKDError(Exception):
    """A problem the user can fix: the message names the file, field or stage and what to do."""

    exit_code = 2


class ConfigError(EdgeKDError):
    """The pipeline YAML (or a flag) is invalid."""


class DataError(EdgeKDError):
    """A dataset is missing, empty or malformed."""


class ModelError(EdgeKDError):
    """A model or checkpoint cannot be built or loaded."""


class ArtifactError(EdgeKDError):
    """An ONNX file, bundle or report is corrupt, tampered with or from elsewhere."""


class TargetError(EdgeKDError):
    """A target is unknown or its runtime is not installed."""


class OutputError(EdgeKDError):
    """An output file or folder cannot be written (missing parent, read-only, not a folder)."""


class StageError(EdgeKDError):
    """A pipeline stage failed for a reason the user can act on."""


class QuantizerFailed(StageError):
    """A quantizer (onnxruntime's, NNCF) could not make a valid int8 model of a model that is itself fine: that
    recipe's targets ship a float candidate, as when no int8 model is within the accuracy budget."""


class GateFailed(EdgeKDError):
    """The release gate failed: exit 1, not 2, because the input was fine."""

    exit_code = 1


def openvino_reason(exc: Exception) -> str:
    """The line of an OpenVINO exception that says what went wrong: its first lines only name source files
    ("Exception from src/inference/src/cpp/core.cpp:132:"), the cause comes last. Here in core because both the
    OpenVINO backend (runtimes/) and the language models' IR (runtimes/openvino_convert.py) word their errors with it."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    telling = [line for line in lines if not line.startswith(("Exception from ", "Check '"))]
    return (telling or lines or [type(exc).__name__])[-1][:200]


def clip_words(text: str, limit: int = 240) -> str:
    """`text` on one line, cut at a word boundary to about `limit` characters, with an ellipsis when cut: a runtime's
    message quoted inside edgekd's own line stays readable (no word or path cut in half)."""
    line = " ".join(str(text).split())
    if len(line) <= limit:
        return line
    cut = line.rfind(" ", 0, limit)
    return line[:cut if cut > limit // 2 else limit].rstrip(" ,;:") + " ..."
