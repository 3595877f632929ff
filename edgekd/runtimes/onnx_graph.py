"""Reading an ONNX graph without torch or a runtime (the `onnx` package only)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def onnx_parameters(path: Path) -> int:
    """Stored weights and biases, counted so that an int8 model and its fp32 source agree: shape tensors and
    quantization parameters (scales, zero points) are not weights. No runtime API offers this count."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    quant_params = {name for node in model.graph.node if node.op_type in ("QuantizeLinear", "DequantizeLinear")
                    for name in node.input[1:]}
    total = 0
    for tensor in model.graph.initializer:
        if tensor.data_type != onnx.TensorProto.INT64 and tensor.name not in quant_params:
            total += int(np.prod(tensor.dims, dtype=np.int64))
    return total
