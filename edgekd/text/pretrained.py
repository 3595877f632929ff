"""A user's own BERT-style classifier, as `save_pretrained(folder)` writes it, with the `tokenizers` file that
encodes its inputs beside it (folder/tokenizer.json): read from local files only, safetensors only (a pickled
pytorch_model.bin could run code when loaded), no remote code, eager attention.

`inspect` reads config.json and tokenizer.json alone (json and tokenizers, no torch), so a config is checked in a
second before any weights load; `load_classifier` loads the weights with transformers.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from edgekd.core.errors import DataError, ModelError
from edgekd.core.pretrained_folder import read_config, require_safetensors

MODEL_TYPE = "bert"
TOKENIZER_FILE = "tokenizer.json"
DEFAULT_LABEL = re.compile(r"^LABEL_[0-9]+$")  # what transformers names labels nobody named


@dataclass(frozen=True)
class PretrainedFolder:
    """What the pipeline needs to know of a save_pretrained folder before loading its weights."""

    folder: Path
    where: str  # the config key that named it (teachers[0].checkpoint, student.checkpoint), for error messages
    labels: list[str]  # config.id2label, in the order of the classifier's logits
    vocab_size: int
    max_positions: int
    tokenizer_json: str = field(repr=False)


def inspect(folder: Path, where: str) -> PretrainedFolder:
    """The folder's config and tokenizer, checked; one-line ModelErrors naming `where` and what to do."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"{where} '{folder}': not a folder; give the folder that save_pretrained wrote")
    label = f"{where} '{folder}'"
    config = read_config(folder, label, MODEL_TYPE, "BERT-style classifiers (BertForSequenceClassification)")
    require_safetensors(folder, label)
    tokenizer_json = _tokenizer_json(folder, where)
    id2label = config.get("id2label") or {}
    labels = [str(id2label[key]) for key in sorted(id2label, key=int)]
    return PretrainedFolder(folder, where, labels, int(config.get("vocab_size", 0)),
                            int(config.get("max_position_embeddings", 0)), tokenizer_json)


def _tokenizer_json(folder: Path, where: str) -> str:
    path = folder / TOKENIZER_FILE
    if not path.is_file():
        raise ModelError(f"{where} '{folder}': no {TOKENIZER_FILE}; save the model's tokenizer beside it "
                         f"(tokenizers: tokenizer.save('{path}'); transformers: tokenizer.save_pretrained(folder))")
    return path.read_text(encoding="utf-8")


def files(given: PretrainedFolder) -> list[Path]:
    """The folder's files a run reads (recorded with their sha256 in the manifest)."""
    return [given.folder / "config.json", *sorted(given.folder.glob("*.safetensors")), given.folder / TOKENIZER_FILE]


def check_labels(given: PretrainedFolder, corpus_labels: list[str]) -> None:
    """The model's labels must name the corpus' labels, one for one: its logits are matched to them by name."""
    if sorted(given.labels) == sorted(corpus_labels):
        return
    default = given.labels and all(DEFAULT_LABEL.match(label) for label in given.labels)
    advice = ("the model has transformers' default names; save it with config.id2label naming them" if default
              else "give a model trained on these labels, with config.id2label naming them")
    raise DataError(f"{given.where}: the model's labels {given.labels} are not the corpus' {sorted(corpus_labels)}; {advice}")


def check_vocabulary(given: PretrainedFolder, tokenizer_size: int, max_length: int) -> None:
    """Every id the tokenizer makes must index the model's embedding table, and every position its position table.
    A table larger than the tokenizer is fine: vocabularies are often padded to a multiple of 8 or 64."""
    if tokenizer_size > given.vocab_size:
        raise ModelError(f"{given.where}: {TOKENIZER_FILE} has {tokenizer_size} tokens and the model's config vocab_size is "
                         f"{given.vocab_size}; give the tokenizer the model was trained with")
    if max_length > given.max_positions:
        raise ModelError(f"data.max_length {max_length}: the model at {given.where} takes at most {given.max_positions} "
                         f"tokens (max_position_embeddings); set data.max_length to {given.max_positions} or less")


def load_classifier(given: PretrainedFolder):
    """The folder's BertForSequenceClassification, in eval mode. Eager attention: a model built with transformers'
    default (sdpa) exports a graph onnxruntime's BERT optimizer cannot fuse."""
    from edgekd.text.models import _transformers

    transformers = _transformers()
    try:
        model, info = transformers.BertForSequenceClassification.from_pretrained(
            str(given.folder), local_files_only=True, use_safetensors=True, trust_remote_code=False,
            attn_implementation="eager", output_loading_info=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{given.where} '{given.folder}': cannot load the model ({str(exc).splitlines()[0][:160]})") from None
    untrained = sorted(key for key in info.get("missing_keys", ()) if key.startswith("classifier."))
    if untrained:  # transformers would start the head from random weights, with a warning nobody reads
        raise ModelError(f"{given.where} '{given.folder}': no trained classifier head ({untrained[0]} missing); give a "
                         "BertForSequenceClassification saved after fine-tuning")
    return model.eval()
