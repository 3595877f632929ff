"""Debian package descriptions as labelled text: `apt-cache dumpavail` records joined with the long
descriptions of apt's Translation-en files.

Why two sources: Packages files (what dumpavail prints) carry only the one-line short description and its
Description-md5; since Debian 6 the long description lives in i18n/Translation-en, keyed by that md5 (and
apt fetches those files only when Acquire::Languages includes "en"). Parsing uses python-debian's deb822
reader, the one Debian's own tools use, so continuation lines and " ." paragraph breaks are read as apt does.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO

from edgekd.core.errors import DataError

# dumpavail fields this module reads; python-debian skips the rest while parsing, which halves the time.
PACKAGE_FIELDS = ["Package", "Source", "Section", "Description", "Description-md5"]
TRANSLATION_FIELDS = ["Package", "Description-md5", "Description-en"]


@dataclass(frozen=True)
class DebianPackage:
    package: str
    source: str      # the Source field without its version, else the package itself: binaries of one source share it
    section: str     # without its archive area ("contrib/", "non-free/")
    short: str
    long: str


def _paragraphs(handle: IO[str], fields: list[str]) -> Iterator[dict[str, str]]:
    from debian.deb822 import Deb822

    for paragraph in Deb822.iter_paragraphs(handle, fields=fields, use_apt_pkg=False):
        yield dict(paragraph)


def long_descriptions(translation: IO[str]) -> dict[str, str]:
    """Description-md5 -> long description (plain text) from one Translation-en file."""
    found = {}
    for paragraph in _paragraphs(translation, TRANSLATION_FIELDS):
        md5, text = paragraph.get("Description-md5"), paragraph.get("Description-en", "")
        if md5 and "\n" in text:
            found[md5] = plain_long_description(text.split("\n", 1)[1])
    return found


def plain_long_description(body: str) -> str:
    """A deb822 long description as plain text: continuation lines joined, " ." paragraph marks dropped."""
    lines = (line.strip() for line in body.splitlines())
    return " ".join(line for line in lines if line and line != ".")


def section_label(section: str) -> str:
    """'contrib/games' -> 'games': the archive area is licensing, not topic."""
    return section.rsplit("/", 1)[-1].strip()


def source_name(paragraph: dict[str, str]) -> str:
    """'Source: foo (1.2-3)' -> 'foo'; without a Source field the binary is its own source."""
    source = paragraph.get("Source", "").split(" ", 1)[0].strip()
    return source or paragraph["Package"]


def packages(dumpavail: IO[str], long_texts: dict[str, str] | None = None) -> Iterator[DebianPackage]:
    """Every record of `apt-cache dumpavail` output that has a package name, a section and a description."""
    long_texts = long_texts or {}
    for paragraph in _paragraphs(dumpavail, PACKAGE_FIELDS):
        if not paragraph.get("Package") or not paragraph.get("Section") or not paragraph.get("Description"):
            continue
        short, _, inline_long = paragraph["Description"].partition("\n")
        long = plain_long_description(inline_long) or long_texts.get(paragraph.get("Description-md5", ""), "")
        yield DebianPackage(paragraph["Package"], source_name(paragraph), section_label(paragraph["Section"]),
                            short.strip(), long)


def without_names(text: str, names: Iterable[str]) -> str:
    """`text` with each name (package, source) removed as a whole word, case-insensitively: the name alone
    often gives the section away (python3-*, lib*-dev, golang-*), and the model should learn from the prose."""
    for name in sorted(set(names), key=len, reverse=True):  # longest first: "libfoo-dev" before "libfoo"
        text = re.sub(rf"(?<![\w.+-]){re.escape(name)}(?![\w+-])", " ", text, flags=re.IGNORECASE)
    text = re.sub(r"\(\s*\)", " ", text)  # "(python3-foo)" leaves empty brackets behind
    return re.sub(r"\s+([.,;:])", r"\1", re.sub(r"\s+", " ", text)).strip()


def package_text(record: DebianPackage) -> str:
    """The example's text: short plus long description, without the package's or its source's name."""
    return without_names(f"{record.short}. {record.long}" if record.long else record.short, (record.package, record.source))


def check_not_empty(records: list[DebianPackage], where: str) -> list[DebianPackage]:
    if not records:
        raise DataError(f"{where}: no package records with a Section and a Description; run `apt-get update` "
                        "(apt-cache finds nothing before it) or pass a saved `apt-cache dumpavail` file")
    return records
