"""Input cleaning, the length cut and reading one text per line."""

from __future__ import annotations

import pytest

from selfheal.inputs import InputError, decode_lines, prepare_text


def test_control_characters_are_stripped_and_space_collapsed():
    clean = prepare_text("Great\x00 film\x1b[31m!\t\n  Really\u200b.", 5000)
    assert clean.text == "Great film [31m! Really ."
    assert not clean.cut


def test_whitespace_only_is_empty():
    assert prepare_text(" \t\n\x07 ", 5000).text == ""


def test_long_text_is_cut_and_says_so():
    clean = prepare_text("word " * 100, 50)
    assert clean.cut and len(clean.text) <= 50 and clean.chars == 499


def test_decode_lines_skips_blank_lines_and_numbers_them():
    lines = [b"first\n", b"\n", "déjà vu\n".encode(), b"   \n", b"last"]
    assert decode_lines(lines, "f.txt") == [(1, "first\n"), (3, "déjà vu\n"), (5, "last")]


def test_decode_lines_names_the_bad_line():
    with pytest.raises(InputError, match=r"f\.txt: line 2 is not valid UTF-8"):
        decode_lines([b"ok\n", b"caf\xe9\n"], "f.txt")


def test_decode_lines_drops_a_bom():
    assert decode_lines([b"\xef\xbb\xbfhello\n"], "f") == [(1, "hello\n")]
