"""The corpus: deduplication, class choice, group splits, the snapshot and the JSONL/CSV loader."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from edgekd.core.errors import DataError
from edgekd.lang import corpus
from edgekd.lang.corpus import Example
from edgekd.lang.debian import DebianPackage


def _examples(groups: int = 200) -> list[Example]:
    return [Example(f"text {g} {i}", f"label{g % 4}", group=f"source{g}") for g in range(groups) for i in range(3)]


def test_duplicate_texts_keep_one_example_and_conflicting_labels_drop_the_text():
    kept = corpus.deduplicate([Example("same", "a", group="z"), Example("same", "a", group="b"),
                               Example("torn", "a", group="c"), Example("torn", "b", group="d"), Example("", "a")])
    assert kept == [Example("same", "a", group="b")]  # first group in sorted order, whatever the input order


def test_largest_classes_keeps_the_most_frequent_labels_ties_by_name():
    examples = [Example(str(i), label) for i, label in enumerate("aaabbbccd")]
    assert {e.label for e in corpus.largest_classes(examples, 2)} == {"a", "b"}


def test_a_group_never_straddles_splits_and_the_split_is_deterministic():
    first = corpus.split_by_group(_examples(), seed=3)
    splits_of_group = {}
    for example in first:
        splits_of_group.setdefault(example.group, set()).add(example.split)
    assert all(len(splits) == 1 for splits in splits_of_group.values())
    assert corpus.split_by_group(_examples(), seed=3) == first
    assert corpus.split_by_group(_examples(), seed=4) != first
    shares = {name: len(corpus.split(first, name)) / len(first) for name in corpus.SPLITS}
    assert 0.65 < shares["train"] < 0.95 and 0.02 < shares["test"] < 0.2, shares


def test_a_groups_split_does_not_move_when_other_groups_come_or_go():
    fewer = {e.group: e.split for e in corpus.split_by_group(_examples(100))}
    more = {e.group: e.split for e in corpus.split_by_group(_examples(200))}
    assert all(more[group] == split for group, split in fewer.items())


def test_build_from_packages_removes_names_deduplicates_and_splits():
    records = [DebianPackage("foo-doc", "foo", "doc", "manual for foo", ""),
               DebianPackage("bar-doc", "bar", "doc", "manual for bar", ""),  # the same text once names are gone
               DebianPackage("baz", "baz", "games", "a game", "")]
    built = corpus.build(records, classes=20)
    assert sorted((e.text, e.label) for e in built) == [("a game", "games"), ("manual for", "doc")]
    assert all(e.split in corpus.SPLITS for e in built)


@pytest.mark.parametrize("name", ["corpus.jsonl.gz", "corpus.jsonl"])
def test_snapshot_reads_back_and_its_sha256_is_reproducible(tmp_path, name):
    examples = corpus.split_by_group(_examples(20))
    first = corpus.write_snapshot(examples, tmp_path / "a" / name)
    again = corpus.write_snapshot(examples, tmp_path / "b" / name)
    assert first == again and len(first) == 64
    assert corpus.load(tmp_path / "a" / name) == examples


def test_csv_with_text_and_label_loads_with_quoted_commas(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text('label,text\nspam,"buy now, cheap"\nham,see you at 5\n', encoding="utf-8")
    assert corpus.load(path) == [Example("buy now, cheap", "spam"), Example("see you at 5", "ham")]


@pytest.mark.parametrize("name", ["excel.csv", "excel.csv.gz", "excel.jsonl"])
def test_a_utf8_byte_order_mark_is_accepted(tmp_path, name):
    """Excel's "CSV UTF-8" opens the file with a BOM: it was read into the first column's name ('\ufefftext'), and
    the file refused with "the header row has no text column"."""
    body = ("text,label\ncaf\u00e9 au lait,food\n" if ".csv" in name
            else '{"text": "caf\u00e9 au lait", "label": "food"}\n').encode("utf-8")
    data = b"\xef\xbb\xbf" + body
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    assert corpus.load(path) == [Example("caf\u00e9 au lait", "food")]


BAD_FILES = [
    ("bad.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", label: "y"}\n', r"bad.jsonl:2: not valid JSON"),
    ("bad.jsonl", '{"text": "a", "label": "x"}\n\n["b", "y"]\n', r"bad.jsonl:3: a JSON list, not an object"),
    ("bad.jsonl", '{"text": "a"}\n', r"bad.jsonl:1: no label"),
    ("bad.jsonl", '{"text": "a", "label": ["x"]}\n', r"bad.jsonl:1: label is a list"),
    ("bad.jsonl", '{"text": "a", "label": "x", "split": "dev"}\n', r"bad.jsonl:1: split 'dev' is none of train, val, test"),
    ("bad.csv", "text,category\na,b\n", r"bad.csv:1: the header row has no label column"),
    ("bad.csv", "text,label\na,b\nc,d,e\n", r"bad.csv:3: more cells than the header's 2 columns"),
    ("bad.csv", "text,label\n , b\n", r"bad.csv:2: no text"),
    ("empty.jsonl", "\n", r"empty.jsonl: no examples"),
    ("corpus.txt", "a,b\n", r"corpus.txt: unknown text corpus format"),
]


@pytest.mark.parametrize("name, content, message", BAD_FILES)
def test_bad_files_are_one_line_naming_the_file_and_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as caught:
        corpus.load(path)
    assert str(caught.value).startswith(str(tmp_path / message.split(":")[0])), str(caught.value)
    assert message.split(":", 1)[-1] in str(caught.value) and "\n" not in str(caught.value)


def test_missing_damaged_and_non_utf8_files_are_one_line(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        corpus.load(tmp_path / "absent.jsonl")
    (tmp_path / "cut.jsonl.gz").write_bytes(gzip.compress(b'{"text": "a", "label": "b"}\n')[:-12])
    with pytest.raises(DataError, match=r"cut.jsonl.gz: cannot read .*damaged"):
        corpus.load(tmp_path / "cut.jsonl.gz")
    (tmp_path / "latin1.csv").write_bytes("text,label\ncaf\xe9,x\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.csv:2: byte 0xe9 at column 4 is not UTF-8"):
        corpus.load(tmp_path / "latin1.csv")


@pytest.mark.parametrize("name", ["big.jsonl", "big.jsonl.gz"])
def test_a_non_utf8_byte_deep_in_a_jsonl_names_its_line_and_column(tmp_path, name):
    """Past the first 8 KiB a text-mode read once said `position 8100`: neither the line nor the file offset."""
    good = b'{"text": "a package of tools for the shell", "label": "utils"}\n'
    data = good * 300 + b'{"text": "caf\xe9 au lait", "label": "food"}\n' + good
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    with pytest.raises(DataError, match=rf"{name}:301: byte 0xe9 at column 14 is not UTF-8; save the file as UTF-8"):
        corpus.load(path)


def test_counts_table_is_per_label_and_split():
    table = corpus.counts([Example("a", "x", "train"), Example("b", "x", "test"), Example("c", "y", "train")])
    assert table == {"x": {"test": 1, "train": 1}, "y": {"train": 1}}
    assert json.dumps(table)  # goes into the results JSON as it is


def test_loader_reads_the_snapshot_path_types(tmp_path):
    path = Path(tmp_path / "s.jsonl")
    corpus.write_snapshot([Example("t", "l", "train", "g")], str(path))
    assert corpus.load(str(path))[0].group == "g"


def test_labels_map_to_sorted_class_indices_and_unseen_labels_are_refused():
    train = [Example("a", "net"), Example("b", "games"), Example("c", "net")]
    names = corpus.label_names(train)
    assert names == ["games", "net"] and corpus.label_ids(train, names).tolist() == [1, 0, 1]
    with pytest.raises(DataError, match=r"labels 'perl' are not among the 2 training labels"):
        corpus.label_ids([Example("d", "perl")], names)


def test_stratified_keeps_the_class_proportions_and_all_when_not_smaller():
    examples = [Example(f"t{i}", "big" if i % 4 else "small", group=f"g{i}") for i in range(400)]
    kept = corpus.stratified(examples, 100, seed=0)
    assert len(kept) == 100 and sum(e.label == "small" for e in kept) == 25
    assert kept == corpus.stratified(examples, 100, seed=0)  # the same subset on a rerun
    assert corpus.stratified(examples, None, 0) is examples and corpus.stratified(examples, 400, 0) is examples


def test_an_unseen_label_names_where_it_came_from_and_what_to_do_there():
    """A label only in test once said `labels 'man4' are not among the 6 training labels`, naming no file or split."""
    names = ["games", "net"]
    with pytest.raises(DataError, match=r"^corpus.jsonl \(test split\): labels 'perl' are not among the 2 training labels "
                                        r"\(games, net\); every label needs training examples: add some to the train split"):
        corpus.label_ids([Example("d", "perl", "test")], names, "corpus.jsonl (test split)")


@pytest.mark.parametrize("text", ["\u200b\u200b", "\x00\x01\x02", "\ufeff \u2028"])
def test_a_text_of_only_invisible_characters_is_refused_naming_file_and_line(tmp_path, text):
    """Trial defect (session 14): texts empty to the tokenizer ("\\u200b\\u200b", "\\x00\\x01\\x02") were accepted and
    trained on as [CLS] [SEP]; only whitespace (str.strip) was refused."""
    path = tmp_path / "invisible.jsonl"
    path.write_text(json.dumps({"text": "fine", "label": "a"}) + "\n" + json.dumps({"text": text, "label": "a"}) + "\n")
    with pytest.raises(DataError, match=r"invisible.jsonl:2: no text: .* is only spaces, control or invisible characters"):
        corpus.load(path)
    path.write_text(json.dumps({"text": "caf\u00e9\u200b ok", "label": "a"}) + "\n")  # a visible character: kept as it is
    assert corpus.load(path)[0].text == "caf\u00e9\u200b ok"


def test_a_row_without_text_lists_the_keys_found_and_the_one_meant(tmp_path):
    """Trial defect (session 14): {"Text": ...} said "no text; every example needs a non-empty text and label" without
    the keys the row has."""
    path = tmp_path / "keys.jsonl"
    path.write_text(json.dumps({"Text": "hello", "Label": "a", "id": 3}) + "\n")
    with pytest.raises(DataError, match=r"keys.jsonl:1: no text; .* \(keys found: 'Text', 'Label', 'id'; rename 'Text' "
                                        r"as 'text' and 'Label' as 'label'\)$"):
        corpus.load(path)


def test_a_missing_file_asks_for_the_users_own_file_not_the_corpus_builder(tmp_path):
    """Trial defect (session 14): api.bench(bundle, texts='nope.jsonl') said "file not found; build it with
    benchmarks/text_corpus.py", advice for the Debian corpus, not for a user's file on a device."""
    with pytest.raises(DataError, match=r"nope.jsonl: file not found; give the path of your .jsonl or .csv of "
                                        r"text,label$"):
        corpus.load(tmp_path / "nope.jsonl")
