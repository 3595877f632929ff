"""Training with torch: model families, the training loop, DDP, distillation and ONNX export."""
