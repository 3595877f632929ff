"""Int8 quantization: per-target PTQ recipes through onnxruntime's static quantization."""
