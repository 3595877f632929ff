"""Stages 1-2 of a language model: the tokenizer and the teacher (trained here, or given), then the student
distilled from the teacher's cached top-k logits and/or its own continuations (distill_steps.py)."""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np

from edgekd.core.errors import ConfigError
from edgekd.core.fileio import atomic_path, resolve_path, searched
from edgekd.lm.models import save_pretrained
from edgekd.pipeline.stage import StageOutput, TaskStep
from edgekd.tasks.lm import LanguageModelConfig, student_dir, teacher_dir, tokenizer_path


def train_order(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(count)


class LMTeachersStep(TaskStep):
    """Stage 1: the byte-level BPE tokenizer (trained on the train split) and the teacher decoder."""

    name = "teachers"
    sections = ("seed", "data", "teacher")
    trains = True

    @classmethod
    def check(cls, config: LanguageModelConfig, base_dir: Path) -> None:
        teacher = config.teacher
        for key, path in (("teacher.checkpoint", teacher.checkpoint), ("teacher.tokenizer", teacher.tokenizer)):
            if path and not resolve_path(path, base_dir).exists():
                raise ConfigError(f"{key}: {path} not found ({searched(path, base_dir)}); give a save_pretrained folder "
                                  "and its tokenizer.json")
        if teacher.tokenizer and "vocab_size" in config.data.model_fields_set:
            _check_given_vocabulary(config, resolve_path(teacher.tokenizer, base_dir))

    def check_inputs(self):
        """The corpus is listed and split (ctx.dataset) before the run folder is made; nothing else to check early."""
        return None

    def run(self) -> StageOutput:
        from edgekd.lm.models import parameter_count
        from edgekd.lm.training import torch_perplexity

        ctx, cfg = self.ctx, self.ctx.cfg
        tokenizer = self._tokenizer()
        ctx.dataset.check_splits(tokenizer)  # a split too small for one block stops the run before the teacher trains
        self._check_vocabulary(tokenizer)  # before the teacher trains, not after
        if cfg.distill.mode != "token":  # the distill stage's prompts, one per training block: known now, not at stage 2
            from edgekd.lm.sequences import check_prompt_count

            check_prompt_count(cfg.distill.sequence.prompts, len(ctx.dataset.blocks(tokenizer, "train")))
        teacher, trained = self._teacher(tokenizer)
        outputs = [tokenizer, *save_pretrained(teacher, teacher_dir(ctx))]
        val = ctx.dataset.blocks(tokenizer, "val")[: cfg.data.val_blocks]
        test = ctx.dataset.blocks(tokenizer, "test")[: cfg.data.test_blocks or None]  # the reference bench reports beside the student
        val_perplexity = round(torch_perplexity(teacher, val), 4)
        if trained is None:  # a given checkpoint, measured before it teaches (as a given image teacher's top-1 is)
            _say_given_teacher(cfg, val_perplexity, len(val), teacher.config.vocab_size)
        metrics = {"corpus": ctx.dataset.corpus.describe(), "tokenizer": {"vocab_size": teacher.config.vocab_size},
                   # params and test_perplexity: bench's teacher reference
                   "teacher": {"params": parameter_count(teacher), "val_perplexity": val_perplexity,
                               "test_perplexity": round(torch_perplexity(teacher, test), 4), "given": trained is None,
                               **(trained or {})}}
        return StageOutput(outputs, metrics)

    def _check_vocabulary(self, tokenizer: Path) -> None:
        """distill.top_k within the vocabulary the tokenizer has; a learned vocabulary smaller than data.vocab_size
        said (the BPE trainer stops when the corpus gives no more merges), as text classifiers say it."""

        from edgekd.lang.lm_tokenizer import LMTokenizer

        cfg, size = self.ctx.cfg, LMTokenizer(tokenizer).vocab_size
        if cfg.distill.mode != "sequence" and cfg.distill.top_k > size:
            raise ConfigError(f"distill.top_k {cfg.distill.top_k}: the vocabulary has {size} tokens (the run's tokenizer); "
                              f"give at most {size}")
        if not cfg.teacher.tokenizer and size < cfg.data.vocab_size:
            warnings.warn(f"data.vocab_size {cfg.data.vocab_size}: the tokenizer learned {size} tokens from the training "
                          f"split (no further merges in it); the models take {size}: set data.vocab_size to {size} to say "
                          "so, or give more text", stacklevel=2)

    def _tokenizer(self) -> Path:
        from edgekd.lang.lm_tokenizer import LMTokenizer, train_on_corpus

        ctx, given = self.ctx, self.ctx.cfg.teacher.tokenizer
        out = tokenizer_path(ctx)
        if given:
            LMTokenizer(resolve_path(given, ctx.base_dir))  # refuses a file that is not a usable tokenizer, naming it
            with atomic_path(out) as tmp:
                shutil.copyfile(resolve_path(given, ctx.base_dir), tmp)
            return out
        return train_on_corpus(ctx.dataset.corpus, ctx.cfg.data.vocab_size, out)

    def _teacher(self, tokenizer: Path):
        from edgekd.lang.lm_tokenizer import LMTokenizer
        from edgekd.lm.losses import lm_cross_entropy
        from edgekd.lm.models import LMShape, build_lm, gpt2_config, load_given_teacher
        from edgekd.lm.training import block_batches, train_lm

        ctx, cfg = self.ctx, self.ctx.cfg
        vocab = LMTokenizer(tokenizer)
        if cfg.teacher.checkpoint:
            return load_given_teacher(resolve_path(cfg.teacher.checkpoint, ctx.base_dir), vocab.vocab_size, cfg.data.context), None
        shape = LMShape(cfg.teacher.layers, cfg.teacher.width, cfg.teacher.heads, cfg.data.context).check("teacher")
        model = build_lm(gpt2_config(vocab.vocab_size, shape, vocab.eos_id), seed=cfg.seed)
        train = ctx.dataset.blocks(tokenizer, "train")
        settings = cfg.teacher.train
        stats = train_lm(model, block_batches(train, train_order(len(train), cfg.seed), settings.batch_size), settings.steps,
                         settings.lr, lambda logits, ids, step: lm_cross_entropy(logits, ids), "teacher")
        return model, {"training": stats}


def _check_given_vocabulary(config: LanguageModelConfig, tokenizer: Path) -> None:
    """data.vocab_size is what a tokenizer trained here learns; with a given one the models take that tokenizer's size.
    Set explicitly to another size, it would be ignored without a word: refused before anything runs."""
    from edgekd.lang.lm_tokenizer import LMTokenizer

    size = LMTokenizer(tokenizer).vocab_size  # refuses a file that is not a usable tokenizer, naming it
    if size != config.data.vocab_size:
        raise ConfigError(f"data.vocab_size {config.data.vocab_size}: teacher.tokenizer '{config.teacher.tokenizer}' has "
                          f"{size} tokens, which the models take (data.vocab_size sizes a tokenizer trained here); set "
                          f"data.vocab_size to {size} or leave it out")


def _say_given_teacher(cfg: LanguageModelConfig, val_perplexity: float, blocks: int, vocab: int) -> None:
    import sys

    print(f"[teachers] teacher.checkpoint '{cfg.teacher.checkpoint}' with teacher.tokenizer '{cfg.teacher.tokenizer}': "
          f"validation perplexity {val_perplexity:.2f} on {blocks} blocks (a uniform guess over its {vocab} tokens "
          f"scores {vocab})", file=sys.stderr, flush=True)


def student_warnings(cfg: LanguageModelConfig, teacher: dict, student_val_perplexity: float) -> list[str]:
    """A student that ends below the perplexity of the teacher that taught it: the teacher is the weak part (a given
    checkpoint read with another tokenizer of the same size is one; the run accepts it, so it is said)."""
    if student_val_perplexity >= teacher["val_perplexity"]:
        return []
    check = ("check teacher.tokenizer is the checkpoint's own (another tokenizer of the same size gives it other ids)"
             if teacher.get("given") else "train the teacher longer or larger (teacher.train.steps, teacher.width)")
    return [f"distill: the student's validation perplexity {student_val_perplexity:.2f} is below its teacher's "
            f"{teacher['val_perplexity']:.2f}: a teacher worse than its student: {check}"]


class LMDistillStep(TaskStep):
    """Stage 2: the student (fewer layers, narrower) trained on the teacher's cached top-k logits and the text
    (distill.mode token), on the teacher's own continuations (sequence), or on both interleaved."""

    name = "distill"
    sections = ("distill", "student")
    trains = True

    def run(self) -> StageOutput:
        from edgekd.lm.distill_steps import DistillSteps
        from edgekd.lm.models import build_lm, load_pretrained, parameter_count, student_config
        from edgekd.lm.training import torch_perplexity, train_lm

        ctx, cfg = self.ctx, self.ctx.cfg
        settings, tokenizer = cfg.distill, tokenizer_path(ctx)
        teacher = load_pretrained(teacher_dir(ctx))
        train = ctx.dataset.blocks(tokenizer, "train")
        # The teacher's targets for exactly the steps the student will take, once; kept in the stage folder for --resume.
        steps = DistillSteps.prepare(settings, teacher, train, ctx.stage_dir("distill"), cfg.seed)
        student = build_lm(student_config(teacher.config, cfg.student.layers, cfg.student.width, cfg.student.heads), seed=cfg.seed + 1)
        stats = train_lm(student, steps.batch, settings.train.steps, settings.train.lr, steps.loss, "student")
        val = ctx.dataset.blocks(tokenizer, "val")[: cfg.data.val_blocks]
        val_perplexity = round(torch_perplexity(student, val), 4)
        said = student_warnings(cfg, ctx.manifest.metrics("teachers")["teacher"], val_perplexity)
        for note in said:  # now, and in the report (the bench stage copies them)
            warnings.warn(note, stacklevel=2)
        metrics = {"student": {"params": parameter_count(student), "val_perplexity": val_perplexity,
                               "layers": student.config.n_layer, "width": student.config.n_embd, "heads": student.config.n_head,
                               "training": stats},
                   **steps.metrics(), **({"student_warnings": said} if said else {})}
        return StageOutput(save_pretrained(student, student_dir(ctx)), metrics, inputs=[tokenizer])
