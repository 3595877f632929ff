"""Generative language models (issue 16): corpus, tokenizer, GPT-2-style teacher and student, top-k logit
distillation, ONNX export with a KV cache, int8, and torch-free generation.

Modules are imported one by one (`from edgekd.lang.generate import generate`): the device side (tokenizer,
generate, quantize) needs numpy and onnxruntime, never torch or transformers.
"""
