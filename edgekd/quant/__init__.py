"""Int8 QDQ ONNX: the accuracy-aware fallback (fallback.py) over the backends' quantizers (runtimes/ptq.py:
onnxruntime's static quantization, runtimes/nncf_ptq.py: NNCF), quantization-aware training with torch's fake-quant
ops (qat.py, qat_train.py, qat_export.py) and the `quantize(model, Int8Config(...))` API (api.py).

Only qat*.py import torch; fallback and api import without it. No module here imports onnxruntime.quantization or
nncf: the quantizers are the backends', under runtimes/ (tests/test_import_contracts.py).
"""
