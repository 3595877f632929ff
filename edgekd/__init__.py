"""edgekd: distill, quantize, export and ship small, fast, provably accurate models to devices.

`import edgekd` stays light (no torch): the Python API lives in edgekd.api.
"""
__version__ = "0.1.0"
