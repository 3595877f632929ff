"""Debian records to labelled text: dumpavail joined with Translation-en, names removed, sections stripped."""
from __future__ import annotations

import io

import pytest

pytest.importorskip("debian.deb822")  # python-debian, in the text extra

from edgekd.core.errors import DataError  # noqa: E402
from edgekd.lang import debian  # noqa: E402

DUMPAVAIL = """\
Package: python3-frobnicate
Source: frobnicate (1.2-3)
Version: 1.2-3+b1
Section: python
Description: Frobnicate widgets from Python 3
Description-md5: 11111111111111111111111111111111
Tag: devel::lang:python,
 role::shared-lib

Package: frobnicate-doc
Source: frobnicate
Section: contrib/doc
Description: documentation for Frobnicate
Description-md5: 22222222222222222222222222222222

Package: solitaire
Section: non-free/games
Description: card game
 An inline long description
 .
 with a paragraph break.

Package: no-section
Description: dropped: has no Section

Package: nothing-to-say
Section: misc
"""

TRANSLATION = """\
Package: python3-frobnicate
Description-md5: 11111111111111111111111111111111
Description-en: Frobnicate widgets from Python 3
 frobnicate turns widgets into gadgets.
 .
 This package installs the library for Python 3 (python3-frobnicate).

Package: frobnicate-doc
Description-md5: 22222222222222222222222222222222
Description-en: documentation for Frobnicate
"""


@pytest.fixture
def records() -> list[debian.DebianPackage]:
    return list(debian.packages(io.StringIO(DUMPAVAIL), debian.long_descriptions(io.StringIO(TRANSLATION))))


def test_records_keep_only_packages_with_a_section_and_a_description(records):
    assert [r.package for r in records] == ["python3-frobnicate", "frobnicate-doc", "solitaire"]


def test_sections_lose_their_archive_area_and_sources_their_version(records):
    assert [(r.section, r.source) for r in records] == [("python", "frobnicate"), ("doc", "frobnicate"), ("games", "solitaire")]


def test_long_descriptions_come_from_translation_en_by_md5_or_inline(records):
    assert records[0].long == ("frobnicate turns widgets into gadgets. This package installs the library for Python 3 "
                               "(python3-frobnicate).")
    assert records[1].long == ""  # a Translation-en entry with a short description only
    assert records[2].long == "An inline long description with a paragraph break."


def test_text_drops_the_package_and_source_names_but_keeps_other_words(records):
    text = debian.package_text(records[0])
    assert "frobnicate" not in text.lower() and "python3-frobnicate" not in text
    assert text == "widgets from Python 3. turns widgets into gadgets. This package installs the library for Python 3."


def test_names_are_removed_as_whole_words_only():
    assert debian.without_names("libfoo-dev needs libfoo and libfoobar", ["libfoo"]) == "libfoo-dev needs and libfoobar"
    assert debian.without_names("Tools for GCC (gcc-12)", ["gcc"]) == "Tools for (gcc-12)"


def test_no_usable_records_is_one_line_naming_the_source():
    records = list(debian.packages(io.StringIO("Package: x\nSection: misc\n")))
    with pytest.raises(DataError, match=r"^saved.txt: no package records .*apt-get update"):
        debian.check_not_empty(records, "saved.txt")
