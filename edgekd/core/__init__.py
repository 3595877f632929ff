"""The ground floor: errors, file I/O, YAML, environment, progress, metrics, user-code references.
Imports nothing else of edgekd, and neither torch nor an inference runtime."""
