"""Int8 QDQ ONNX: per-target PTQ recipes through onnxruntime's static quantization (ptq.py), the
accuracy-aware fallback (fallback.py), quantization-aware training with torch's fake-quant ops
(qat.py, qat_train.py, qat_export.py) and the `quantize(model, Int8Config(...))` API (api.py).

Only qat*.py import torch; ptq, fallback and api import without it.
"""
