"""BERT-style text classifiers built from `transformers` configurations (never downloaded), and the two
students of the DistilBERT recipe (Sanh et al. 2019):

- half depth: the teacher's width, half its layers, initialised from every other teacher layer, with the
  teacher's embeddings, pooler and classifier copied (DistilBERT's "one layer out of two");
- narrow: fewer, thinner layers from a fresh initialisation; its hidden states reach the teacher's width
  through a learned projection (TinyBERT-style) for the hidden-state loss.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from edgekd.core.errors import ModelError


def _transformers():
    try:
        import transformers
    except ImportError:
        raise ModelError("text models need Hugging Face transformers: pip install 'edgekd[text]'") from None
    return transformers


@dataclass(frozen=True)
class Size:
    hidden: int = 256
    layers: int = 4
    heads: int = 4
    intermediate: int = 1024


def config(vocab_size: int, num_labels: int, size: Size = Size(), max_length: int = 128, dropout: float = 0.1):
    """A BertConfig for a classifier of `size` over the tokenizer's vocabulary; [PAD] is id 0 as in
    edgekd.lang.text_tokenizer. Eager attention: the same kernels in training and in the exported graph."""
    if size.hidden % size.heads:
        raise ModelError(f"hidden size {size.hidden} is not a multiple of {size.heads} attention heads; pick sizes that divide")
    return _transformers().BertConfig(
        vocab_size=vocab_size, hidden_size=size.hidden, num_hidden_layers=size.layers, num_attention_heads=size.heads,
        intermediate_size=size.intermediate, max_position_embeddings=max_length, num_labels=num_labels, pad_token_id=0,
        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout, type_vocab_size=1,
        attn_implementation="eager")


def classifier(bert_config) -> nn.Module:
    """A randomly initialised BertForSequenceClassification (from its config: nothing is downloaded)."""
    return _transformers().BertForSequenceClassification(bert_config)


def every_other_layer(teacher_layers: int) -> list[int]:
    """Teacher layers 0, 2, 4, ...: the student's layer k starts as the teacher's layer 2k."""
    return list(range(0, teacher_layers, 2))


def half_depth_student(teacher: nn.Module, layers: list[int] | None = None) -> tuple[nn.Module, list[int]]:
    """A student with the teacher's width and the teacher's layers `layers` (default every other one), its
    embeddings, pooler and classifier copied. Returns the student and the layer map."""
    teacher_config = teacher.config
    chosen = every_other_layer(teacher_config.num_hidden_layers) if layers is None else list(layers)
    if not chosen or any(not 0 <= index < teacher_config.num_hidden_layers for index in chosen):
        raise ModelError(f"student layers {chosen}: each must be a teacher layer in 0..{teacher_config.num_hidden_layers - 1}")
    student_config = copy.deepcopy(teacher_config)
    student_config.num_hidden_layers = len(chosen)
    student = classifier(student_config)
    student.bert.embeddings.load_state_dict(teacher.bert.embeddings.state_dict())
    for student_index, teacher_index in enumerate(chosen):
        student.bert.encoder.layer[student_index].load_state_dict(teacher.bert.encoder.layer[teacher_index].state_dict())
    student.bert.pooler.load_state_dict(teacher.bert.pooler.state_dict())
    student.classifier.load_state_dict(teacher.classifier.state_dict())
    return student, chosen


def narrow_student(teacher_config, size: Size) -> tuple[nn.Module, nn.Module]:
    """A fresh student of `size` (same vocabulary, labels, length) and the learned projection of its hidden
    states to the teacher's width (identity when the widths match)."""
    student_config = copy.deepcopy(teacher_config)
    for key, value in (("hidden_size", size.hidden), ("num_hidden_layers", size.layers),
                       ("num_attention_heads", size.heads), ("intermediate_size", size.intermediate)):
        setattr(student_config, key, value)
    if size.hidden % size.heads:
        raise ModelError(f"hidden size {size.hidden} is not a multiple of {size.heads} attention heads; pick sizes that divide")
    return classifier(student_config), hidden_projection(size.hidden, teacher_config.hidden_size)


def hidden_projection(student_width: int, teacher_width: int) -> nn.Module:
    return nn.Identity() if student_width == teacher_width else nn.Linear(student_width, teacher_width)


def aligned_layers(student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """(student, teacher) indices into the `hidden_states` tuples (0 = embeddings, i = after layer i) at the same
    relative depth: 2 layers of 4 give (0,0), (1,2), (2,4). The last pair is the two outputs DistilBERT aligns."""
    return [(k, round(k * teacher_layers / student_layers)) for k in range(student_layers + 1)]


def parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def logits_and_hidden(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    return out.logits, out.hidden_states
