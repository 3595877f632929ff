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


def _sorted_by_label(path, classes=6, per_class=120):
    """A corpus written class after class, with a split column: the file order a user's sorted export has."""
    rows = [{"text": f"text {i} of class {c} with word{c} and word{c}b", "label": f"c{c}",
             "split": "test" if i % 4 == 0 else "val" if i % 4 == 1 else "train"}
            for c in range(classes) for i in range(per_class)]
    return _write_rows(path, rows)


def test_the_evaluation_set_of_a_larger_test_split_holds_every_class_and_is_the_same_each_time(tmp_path):
    """Trial defect (session 14): the evaluation set was the test split's first bench.eval_samples texts in file order,
    so a jsonl sorted by label was judged on its first classes only (3 of 6), and the gate passed without a word."""
    import numpy as np

    from edgekd.tasks.text import TextClassification

    data = _load(_sorted_by_label(tmp_path / "sorted.jsonl"))
    assert len(data.test) == 180
    task = TextClassification()
    x, y = task.evaluation_set(data, 60)
    assert sorted(set(y.tolist())) == list(range(6)) and np.bincount(y).tolist() == [10] * 6  # in proportion
    again_x, again_y = task.evaluation_set(data, 60)
    assert np.array_equal(x["input_ids"], again_x["input_ids"]) and np.array_equal(y, again_y)
    rows = task.evaluation_rows(data, 60)
    assert np.array_equal(data.test.x["input_ids"][rows], x["input_ids"]) and list(rows) == sorted(rows)
    whole_x, whole_y = task.evaluation_set(data, 500)  # not larger: the whole split, in its order
    assert np.array_equal(whole_y, data.test.y)


@pytest.mark.parametrize("limit", [{"train_limit": 20}, {"test_limit": 7}])
def test_a_limit_with_a_class_of_one_example_keeps_that_class_whole(tmp_path, limit):
    """Trial defect (session 14): data.train_limit / test_limit crashed (exit 3, "internal error: ValueError: The least
    populated classes in y have only 1 member") when a class had one example in that split."""
    rows = [dict(row, split="test" if i % 4 == 0 else "val" if i % 4 == 1 else "train")
            for i, row in enumerate(_rows(200))]
    rows += [{"text": f"a lone {name} text of the rare class", "label": "rare", "split": name} for name in ("train", "val", "test")]
    data = _load(_write_rows(tmp_path / "rare.jsonl", rows), **limit)
    part = data.train if "train_limit" in limit else data.test
    split = "train" if "train_limit" in limit else "test"
    assert len(part) == next(iter(limit.values())) and f"a lone {split} text of the rare class" in part.texts


@pytest.mark.parametrize("key", ["train_limit", "test_limit"])
def test_a_limit_below_the_number_of_classes_is_one_line_naming_the_key(tmp_path, key):
    """Trial defect (session 14): data.train_limit 4 with 6 classes crashed with scikit-learn's "The train_size = 4
    should be greater or equal to the number of classes = 6" as an internal error."""
    from edgekd.core.errors import DataError

    with pytest.raises(DataError, match=rf"^data.{key} 4: the {key[:-6]} split of .*sorted.jsonl has 6 classes, and a "
                                        rf"draw of 4 cannot hold one example of each; give data.{key} 6 or more"):
        _load(_sorted_by_label(tmp_path / "sorted.jsonl"), **{key: 4})


def test_integer_labels_are_classes_in_numeric_order(tmp_path):
    """Trial defect (session 14): integer labels became classes sorted as strings ('0', '1', '10', '11', ..., '2'), so
    output i was not label i."""
    rows = [{"text": f"text {i} of label {i % 12} word{i % 12}", "label": i % 12 if i % 2 else str(i % 12)}
            for i in range(600)]
    data = _load(_write_rows(tmp_path / "ints.jsonl", rows))
    assert data.classes == [str(i) for i in range(12)]


def test_texts_repeated_with_conflicting_labels_are_warned_of_with_the_count_and_an_example(tmp_path):
    """Trial defect (session 14): texts that repeat with different labels were neither warned of nor dropped
    (corpus.deduplicate drops them only from the Debian corpus it builds); they are kept, and said."""
    rows = _rows(200) + [{"text": "the same words twice", "label": "a"}, {"text": "the same words twice", "label": "b"},
                         {"text": "another copy", "label": "b"}, {"text": "another copy", "label": "a"},
                         {"text": "agreeing copy", "label": "a"}, {"text": "agreeing copy", "label": "a"}]
    with pytest.warns(UserWarning, match=r"conflict.jsonl: 2 text\(s\) appear with different labels \(e.g. 'the same "
                                         r"words twice' as 'a', 'b'\); they are kept"):
        data = _load(_write_rows(tmp_path / "conflict.jsonl", rows))
    everything = data.train.texts + data.val.texts + data.test.texts
    assert everything.count("the same words twice") == 2 and everything.count("agreeing copy") == 2


def test_texts_cut_at_max_length_are_named_as_the_likely_cause_when_the_text_baseline_wins(tmp_path):
    """Trial defect (session 14): texts with 200 filler words first were cut at data.max_length 32, both models stayed
    at chance while tfidf_logreg (reading whole texts) got 80.5%, and the only advice was to train longer; the share of
    training texts cut is now measured, and named with data.max_length when the text baseline beats a model."""
    from edgekd.pipeline.stages.bench import truncation_note

    path = tiny_corpus.write(tmp_path / "corpus.jsonl")
    short = load_text_dataset(DataConfig(source="text", path=str(path), max_length=512), 0)
    assert short.truncated_share == 0.0
    cut = load_text_dataset(DataConfig(source="text", path=str(path), max_length=8), 0)  # the smallest allowed
    assert cut.truncated_share > 0.5
    lost = ["teacher top-1 19.50% is under the tfidf_logreg baseline's 80.50% on the same test samples: train ..."]
    [note] = truncation_note(lost, 1.0, 8)
    assert note.startswith("100.0% of the training texts are longer than data.max_length 8 tokens") and "raise data.max_length" in note
    assert truncation_note(lost, 0.2, 3) == [] and truncation_note([], 1.0, 3) == []


def test_whole_float_labels_are_in_numeric_order_too():
    """Regression trial (session 14): labels 2.0, 7.0, 10.0 (as pandas writes whole numbers in a column with gaps)
    were sorted as strings, '10.0' before '2.0'; they are in numeric order as integer labels are."""
    from edgekd.lang.corpus import Example, label_names

    examples = [Example(text=f"t{i}", label=label) for i, label in enumerate(["10.0", "2.0", "7.0", "2.0"])]
    assert label_names(examples) == ["2.0", "7.0", "10.0"]
    assert label_names([Example(text="a", label="2.5"), Example(text="b", label="10")]) == ["10", "2.5"]  # not all whole
