"""The bundled Rotten Tomatoes data, the deterministic split and its manifest."""

from __future__ import annotations

import json

import pytest

from selfheal.data import (
    DataError,
    add_examples_to_train,
    build_manifest,
    check_no_leak,
    clean_text,
    load_labelled_file,
    load_rotten_tomatoes,
    prepare_splits,
    stratified_sample,
    verify_split,
)
from selfheal.labels import LABELS, label_id


def test_corpus_counts_and_label_mapping():
    corpus = load_rotten_tomatoes()
    assert len(corpus) == 12_752
    assert corpus.labels.count(1) == 7_368  # fresh -> Positive
    assert corpus.labels.count(0) == 5_384  # rotten -> Negative
    assert len(set(corpus.texts)) == len(corpus)
    assert LABELS == ("Negative", "Positive")
    assert label_id("fresh") == 1 and label_id("rotten") == 0 and label_id("Negative") == 0


def test_split_sizes_stratified_and_disjoint(rt_splits):
    sizes = {name: len(rt_splits[name]) for name in ("train", "validation", "test")}
    assert sizes == {"train": 10_201, "validation": 1_275, "test": 1_276}
    for name in sizes:
        share = sum(rt_splits[name]["label"]) / sizes[name]
        assert abs(share - 7_368 / 12_752) < 0.01
    train = set(rt_splits["train"]["text"])
    assert not train & set(rt_splits["test"]["text"])
    assert not train & set(rt_splits["validation"]["text"])
    check_no_leak(build_manifest(rt_splits, "rotten_tomatoes", 42))


def test_split_is_deterministic(rt_splits):
    again = prepare_splits("rotten_tomatoes", 0.1, 0.1, 42)
    assert again["test"]["text"] == rt_splits["test"]["text"]
    manifest = build_manifest(rt_splits, "rotten_tomatoes", 42)
    verify_split(again["test"], manifest, "test")
    other = prepare_splits("rotten_tomatoes", 0.1, 0.1, 7)
    with pytest.raises(DataError, match="differs from the checkpoint's manifest"):
        verify_split(other["test"], manifest, "test")


def test_shipped_manifest_proves_the_test_split(rt_splits):
    from selfheal.data import read_manifest
    from selfheal.model.checkpoint import MANIFEST_FILE, shipped_checkpoint

    manifest = read_manifest(shipped_checkpoint() / MANIFEST_FILE)
    verify_split(rt_splits["test"], manifest, "test")
    check_no_leak(manifest)


def test_stratified_sample(rt_splits):
    sample = stratified_sample(rt_splits["train"], 100, 0)
    assert len(sample) == 100
    assert 50 <= sum(sample["label"]) <= 65  # ~57.8% positive, like the full split


def test_clarified_examples_go_to_train_only(rt_splits):
    test_text = rt_splits["test"]["text"][0]
    extra = [("a brand new sentence nobody wrote before", 1), (test_text, 0)]
    new, added = add_examples_to_train(rt_splits, extra)
    assert added == 1
    assert "a brand new sentence nobody wrote before" in new["train"]["text"]
    assert test_text not in new["train"]["text"]
    assert new["test"]["text"] == rt_splits["test"]["text"]


def test_csv_and_jsonl_files(tmp_path):
    csv_file = tmp_path / "d.csv"
    csv_file.write_text("text,label\nGreat fun!,positive\nAwful.,0\nGreat fun!,1\n", encoding="utf-8")
    corpus = load_labelled_file(csv_file)
    assert corpus.texts == ["Great fun!", "Awful."] and corpus.labels == [1, 0]
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(json.dumps({"text": "ok\x07 fine", "label": "fresh"}) + "\n", encoding="utf-8")
    assert load_labelled_file(jsonl).texts == ["ok fine"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"text,label\nfine,maybe\n", "row 1: unknown label 'maybe'"),
        (b"words,label\nfine,1\n", "needs 'text' and 'label'"),
        (b"text,label\nok,1\n\xff\xfe,0\n", "line 3 is not valid UTF-8"),
    ],
)
def test_bad_files_name_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        load_labelled_file(path)


def test_hub_dataset_fails_fast_offline(monkeypatch):
    from selfheal.data import load_corpus

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="not reachable"):
        load_corpus("hf:rotten_tomatoes")


def test_clean_text():
    assert clean_text("  a\tb\x00c\u200b\n d ") == "a b c d"
