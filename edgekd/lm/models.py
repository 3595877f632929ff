"""GPT-2-style decoders from a `transformers.GPT2Config`: built from a configuration (random init, nothing is
downloaded) or loaded from a user's local `save_pretrained` folder.

A student is the teacher's configuration with fewer layers and/or a smaller width; it shares the teacher's
tokenizer (same vocabulary), which token-level distillation needs.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from edgekd.core.errors import ConfigError, ModelError
from edgekd.core.pretrained_folder import read_config, require_safetensors


@dataclass(frozen=True)
class LMShape:
    """What decides a decoder's size. width must be a multiple of heads (each head gets width / heads)."""

    layers: int
    width: int
    heads: int
    context: int  # the longest sequence (prompt + generated tokens) the model accepts

    def check(self, what: str) -> LMShape:
        if min(self.layers, self.width, self.heads, self.context) < 1:
            raise ConfigError(f"{what}: layers, width, heads and context must be positive, got {self}")
        if self.width % self.heads:
            raise ConfigError(f"{what}: width {self.width} is not a multiple of heads {self.heads}; each head needs width / heads dimensions")
        return self


def gpt2_config(vocab_size: int, shape: LMShape, eos_id: int, dropout: float = 0.0):
    """A GPT-2 configuration for our tokenizer: its vocabulary and separator, not GPT-2's 50257 tokens."""
    from transformers import GPT2Config

    shape.check("model")
    # Dropout defaults to 0: the models here train for minutes on one corpus, where it only slows learning.
    return GPT2Config(vocab_size=vocab_size, n_positions=shape.context, n_embd=shape.width, n_layer=shape.layers,
                      n_head=shape.heads, bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id,
                      resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout)


def build_lm(config, seed: int = 0):
    """A randomly initialised GPT2LMHeadModel (seeded, so a test or a run can rebuild it exactly)."""
    import torch
    from transformers import GPT2LMHeadModel

    torch.manual_seed(seed)
    return GPT2LMHeadModel(config).eval()


def student_config(teacher_config, layers: Optional[int] = None, width: Optional[int] = None, heads: Optional[int] = None):
    """The teacher's configuration with fewer layers and/or a smaller width (same vocabulary and context)."""
    layers = teacher_config.n_layer if layers is None else layers
    width = teacher_config.n_embd if width is None else width
    heads = heads or _heads_for(width, teacher_config)
    if layers > teacher_config.n_layer or width > teacher_config.n_embd:
        raise ConfigError(f"student: {layers} layers x width {width} is not smaller than the teacher's "
                          f"{teacher_config.n_layer} x {teacher_config.n_embd}; give fewer layers or a smaller width")
    config = teacher_config.__class__.from_dict(teacher_config.to_dict())
    LMShape(layers, width, heads, teacher_config.n_positions).check("student")
    config.n_layer, config.n_embd, config.n_head = layers, width, heads
    return config


def load_pretrained(folder: str | Path):
    """A GPT-2 model saved with `save_pretrained` in a local folder: no download, no remote code, safetensors only
    (a pickled pytorch_model.bin could run code when loaded)."""
    from transformers import GPT2LMHeadModel

    folder = Path(folder)
    read_config(folder, str(folder), "gpt2", "GPT-2-style decoders")
    require_safetensors(folder, str(folder))
    try:
        model = GPT2LMHeadModel.from_pretrained(str(folder), local_files_only=True, use_safetensors=True, trust_remote_code=False)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{folder}: cannot load the model ({str(exc).splitlines()[0][:160]})") from None
    return model.eval()


def load_given_teacher(folder: Path, vocab_size: int, context: int):
    """teacher.checkpoint: load_pretrained, then refused when it does not fit the run's tokenizer or context."""
    model = load_pretrained(folder)
    if model.config.vocab_size != vocab_size:
        raise ModelError(f"teacher.checkpoint: the model has {model.config.vocab_size} tokens and teacher.tokenizer "
                         f"{vocab_size}; give the tokenizer the model was trained with")
    if model.config.n_positions < context:
        raise ModelError(f"teacher.checkpoint: the model's context is {model.config.n_positions} tokens, shorter "
                         f"than data.context {context}; lower data.context")
    return model


def parameter_count(model) -> int:
    """Distinct parameters: GPT-2 ties the output layer to the token embedding, counted once."""
    seen = {id(p): p.numel() for p in model.parameters()}
    return int(sum(seen.values()))


def torch_greedy(model, prompt_ids, new_tokens: int) -> list[int]:
    """Greedy continuation with PyTorch and the model's own KV cache: the reference the ONNX loop must equal."""
    import torch

    ids = torch.as_tensor(prompt_ids, dtype=torch.long).view(1, -1)
    out, cache, produced = None, None, []
    with torch.no_grad():
        step_input = ids
        for _ in range(new_tokens):
            out = model(input_ids=step_input, cache=cache, use_cache=True)
            cache = out.cache
            token = int(out.logits[0, -1].argmax())
            produced.append(token)
            step_input = torch.tensor([[token]])
    return produced


def _heads_for(width: int, teacher_config) -> int:
    """Keep the teacher's head size (width / heads) when the student is narrower."""
    head_size = teacher_config.n_embd // teacher_config.n_head
    return max(1, width // head_size) if width % head_size == 0 else 1


def save_pretrained(model, folder: Path) -> list[Path]:
    """save_pretrained (safetensors) into `folder`, replacing it whole only once the new one is written."""
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(str(partial), safe_serialization=True)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return sorted(p for p in folder.iterdir() if p.is_file())
