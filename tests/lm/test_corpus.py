from __future__ import annotations

import hashlib

import pytest

from edgekd.core.errors import DataError
from edgekd.lm.corpus import SPLITS, folder_corpus, split_of, stdlib_corpus, summary
from tests.lm.conftest import write_corpus


def test_folder_corpus_splits_every_file_once_deterministically(text_folder):
    corpus = folder_corpus(text_folder)
    names = [name for split in SPLITS for name in corpus.files[split]]
    assert sorted(names) == sorted(p.relative_to(text_folder).as_posix() for p in text_folder.rglob("*.py"))
    assert len(names) == len(set(names)) == 60
    assert all(corpus.files[split] == sorted(corpus.files[split]) for split in SPLITS)
    assert folder_corpus(text_folder).files == corpus.files  # same files, same splits


def test_a_files_split_depends_on_its_path_alone(tmp_path):
    small = folder_corpus(write_corpus(tmp_path / "c", files=60))
    bigger = folder_corpus(write_corpus(tmp_path / "c", files=120))  # the first 60 files again, plus 60 new ones
    for split in SPLITS:
        assert set(small.files[split]) <= set(bigger.files[split])
    assert small.file_list_sha256 != bigger.file_list_sha256


def test_the_file_list_sha256_is_of_the_sorted_relative_paths(text_folder):
    corpus = folder_corpus(text_folder)
    listing = sorted(p.relative_to(text_folder).as_posix() for p in text_folder.rglob("*.py"))
    assert corpus.file_list_sha256 == hashlib.sha256("\n".join(listing).encode()).hexdigest()


def test_split_fractions_are_respected_on_many_paths():
    counts = {split: 0 for split in SPLITS}
    for index in range(20000):
        counts[split_of(f"dir/file_{index}.py", (0.8, 0.1, 0.1))] += 1
    assert abs(counts["train"] / 20000 - 0.8) < 0.02 and abs(counts["val"] / 20000 - 0.1) < 0.02


def test_summary_counts_files_bytes_and_tokens(text_folder):
    corpus = folder_corpus(text_folder)
    report = summary(corpus, count_tokens=len)  # characters as tokens: any counter works
    assert sum(report["splits"][s]["files"] for s in SPLITS) == 60
    total_bytes = sum(p.stat().st_size for p in text_folder.rglob("*.py"))
    assert sum(report["splits"][s]["bytes"] for s in SPLITS) == total_bytes
    assert sum(report["splits"][s]["tokens"] for s in SPLITS) == total_bytes  # ASCII: one character per byte
    assert report["file_list_sha256"] == corpus.file_list_sha256


def test_stdlib_corpus_is_the_library_without_its_tests():
    corpus = stdlib_corpus()
    names = [name for split in SPLITS for name in corpus.files[split]]
    assert len(names) > 300 and "json/decoder.py" in names and "os.py" in names
    assert not any(name.startswith(("test/", "site-packages/")) or "/test_" in name or name.startswith("test_") for name in names)
    assert not any("/tests/" in name or "/idle_test/" in name for name in names)
    assert stdlib_corpus().file_list_sha256 == corpus.file_list_sha256
    assert all(corpus.files[split] for split in SPLITS)


@pytest.mark.parametrize("setup, message", [
    (lambda root: root / "missing", "corpus folder not found"),
    (lambda root: root, "no text files"),
])
def test_bad_folders_get_one_line(tmp_path, setup, message):
    with pytest.raises(DataError, match=message):
        folder_corpus(setup(tmp_path))


def test_too_few_files_for_every_split_is_refused(tmp_path):
    (tmp_path / "a.txt").write_text("one")
    (tmp_path / "b.txt").write_text("two")
    with pytest.raises(DataError, match="split empty.*add files"):
        folder_corpus(tmp_path)


def test_non_utf8_file_is_named(text_folder):
    corpus = folder_corpus(text_folder)
    victim = corpus.paths("train")[0]
    victim.write_bytes(b"ok\ncaf\xe9\n")
    with pytest.raises(DataError, match=rf"{victim.name}:2: not UTF-8 text \(byte 0xe9 at offset 6\)"):
        list(corpus.texts("train"))


def test_bad_fractions_are_refused(text_folder):
    with pytest.raises(DataError, match="sum to 1"):
        folder_corpus(text_folder, fractions=(0.9, 0.2, 0.1))


def test_one_file_is_told_to_add_files_not_to_raise_a_fraction(tmp_path):
    """Trial defect (session 13): a one-file corpus was told to "add files or raise that split's fraction", and no
    fraction can help: a file goes wholly into one split."""
    (tmp_path / "only.txt").write_text("one file of text")
    with pytest.raises(DataError, match=r"1 file leave the .* split empty .*; add files: each file goes wholly into one "
                                        r"split, so 3 splits need at least 3 files$"):
        folder_corpus(tmp_path)


def test_a_zero_fraction_is_named_as_why_a_split_has_no_block(text_folder):
    """Trial defect (session 13): data.fractions [1.0, 0, 0] said "(val split: 0 files, ): 0 tokens make no block of
    data.context 32; add text ... or lower data.context": neither helps, the 0 fraction is the cause."""
    from edgekd.lm.dataset import too_small

    corpus = folder_corpus(text_folder, (1.0, 0.0, 0.0))
    message = too_small(corpus, "val", 0, 32)
    assert message == (f"{text_folder}: data.fractions [1.0, 0.0, 0.0] gives the val split nothing, and every split needs "
                       "at least one block of data.context 32; give it a fraction above 0 (e.g. [0.8, 0.1, 0.1])")
