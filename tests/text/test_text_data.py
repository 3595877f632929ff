"""The text task's dataset (edgekd/tasks/text_data.py): what it says when the tokenizer learns less than asked."""
from __future__ import annotations

import warnings

import pytest

from edgekd.data.config import DataConfig
from edgekd.tasks.text_data import load_text_dataset
from tests.text import tiny_corpus


def _load(path, **data):
    return load_text_dataset(DataConfig(source="text", path=str(path), max_length=16, **data), 0)


def test_a_vocabulary_smaller_than_data_vocab_size_is_said_and_recorded_with_why(tmp_path):
    """A trial's data.vocab_size 300 became 200 silently: a small corpus has no more word pieces to learn."""
    path = tiny_corpus.write(tmp_path / "corpus.jsonl")
    with pytest.warns(UserWarning, match=r"^data.vocab_size 300: the tokenizer learned (\d+) tokens from the 240 training "
                                         r"texts, as each of their \d+ distinct words is a whole token already; the models "
                                         r"take \1: set data.vocab_size to \1 to say so, or give more training text$"):
        data = _load(path, vocab_size=300)
    learned = data.tokenizer().get_vocab_size()
    assert learned < 300 and data.vocabulary_note.startswith("data.vocab_size 300:")
    assert data.preprocessing()["text"]["vocab_size"] == learned
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _load(path, vocab_size=learned).vocabulary_note == ""  # as asked: nothing to say
        default = _load(path)  # not asked for by name: recorded, not said
    assert default.vocabulary_note.startswith("data.vocab_size (default 2000): the tokenizer learned")


def test_a_corpus_of_two_groups_is_told_to_give_more_groups_not_more_examples(tmp_path):
    """Trial defect (session 10): a corpus with a group column of two groups said "no test examples; give more
    examples", and more examples of those two groups could never fill a third split."""
    import json

    from edgekd.core.errors import DataError

    path = tmp_path / "two-groups.jsonl"
    rows = [{"text": f"text {i} about {'cats' if i % 2 else 'dogs'}", "label": "ab"[i % 2], "group": f"g{i % 2}"}
            for i in range(200)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(DataError, match=r"two-groups.jsonl: no .* examples; the splits are drawn by its group column, "
                                        r"and it has 2 group\(s\), each wholly in one split: give more groups"):
        _load(path)


def _write_rows(path, rows):
    import json

    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _rows(count, split=None):
    rows = [{"text": f"text {i} about {'cats' if i % 2 else 'dogs'} number {i}", "label": "ab"[i % 2]}
            for i in range(count)]
    return [dict(row, split=split(i)) if split else row for i, row in enumerate(rows)]


def test_a_test_or_val_split_that_repeats_training_texts_is_warned_of(tmp_path):
    """Trial defect (session 13): a split column whose 80 test rows were copies of training rows was taken as given:
    the run scored 100% on texts it had trained on, and nothing said so."""
    rows = _rows(120, lambda i: "train" if i < 100 else "val" if i < 110 else "test")
    rows[110:] = [dict(rows[i], split="test") for i in range(10)]  # the test split: copies of training rows
    rows[100:102] = [dict(rows[i], split="val") for i in (20, 21)]  # two val rows too
    path = _write_rows(tmp_path / "leak.jsonl", rows)
    with pytest.warns(UserWarning) as caught:
        _load(path)
    said = [str(w.message) for w in caught]
    assert any(m.endswith("leak.jsonl: 10 of 10 test texts are also in the train split: top-1 on them says nothing "
                          "about new texts; give the test split texts that training lacks") for m in said), said
    assert any("leak.jsonl: 2 of 10 val texts are also in the train split" in m for m in said), said
    fresh = _write_rows(tmp_path / "fresh.jsonl", _rows(120, lambda i: "train" if i < 100 else "val" if i < 110 else "test"))
    with warnings.catch_warnings(record=True) as clean:
        warnings.simplefilter("always")
        _load(fresh)
    assert not [w for w in clean if "also in the train split" in str(w.message)]


def test_a_split_column_on_some_rows_only_is_refused_naming_the_first_row_without_one(tmp_path):
    """Trial defect (session 13): a split column given on the first rows only was silently dropped and every split
    drawn anew, so rows the user had put in test went into training."""
    from edgekd.core.errors import DataError

    rows = _rows(120, lambda i: "test" if i < 30 else "")
    path = _write_rows(tmp_path / "part.jsonl", [{k: v for k, v in row.items() if v} for row in rows])
    with pytest.raises(DataError, match=r"part.jsonl: example 31 \('text 30 about dogs number 30'\) has no split, while "
                                        r"30 of 120 examples have one; give every example a split"):
        _load(path)
