"""Public alias of edgekd.core.errors, so `from edgekd.errors import GateFailed` (the README's API example) keeps working."""
from edgekd.core.errors import ArtifactError, ConfigError, DataError, EdgeKDError, GateFailed, ModelError, OutputError, StageError, TargetError  # noqa: F401
