"""Print a data source's checks, labels and split sizes (the figures of a model card's Data section).

Usage: python scripts/data_report.py [--config config.yaml] [--set key=value ...]
       e.g. python scripts/data_report.py --set data.source=tweets --set data.sample=10000

Loads the corpus and splits it exactly as ``selfheal train`` does (``config.data``: source, seed,
validation and test shares, the optional stratified train sample), then prints, as Markdown: the
counts of the data checks (:func:`selfheal.data.check_rows`), and the examples per label in the
corpus, in each split and in the train sample.
"""

from __future__ import annotations

import argparse
from collections import Counter

from selfheal.config import load_config
from selfheal.data import SPLITS, load_splits, split_labels, stratified_sample
from selfheal.errors import exit_on_user_error


def main() -> None:
    """Print the report."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()
    d = load_config(args.config, args.overrides).data
    corpus, splits = load_splits(d.source, d.val_size, d.test_size, d.seed)
    labels = split_labels(splits)
    print(f"source `{d.source}`, labels {', '.join(labels)}, split seed {d.seed}\n")
    if corpus.checks:
        print("| check | rows |\n|---|---|")
        for name, count in corpus.checks.items():
            print(f"| {name.replace('_', ' ')} | {count} |")
        print()
    columns = {"corpus (after the checks)": corpus.labels}
    columns |= {name: list(splits[name]["label"]) for name in SPLITS}
    if d.sample is not None:
        columns[f"train sample (data.sample={d.sample})"] = list(
            stratified_sample(splits["train"], d.sample, d.seed)["label"]
        )
    print("| | " + " | ".join(labels) + " | total |")
    print("|---" * (len(labels) + 2) + "|")
    for name, ids in columns.items():
        counts = Counter(ids)
        cells = [f"{counts[i]} ({counts[i] / len(ids):.1%})" for i in range(len(labels))]
        print(f"| {name} | " + " | ".join(cells) + f" | {len(ids)} |")


if __name__ == "__main__":
    exit_on_user_error(main)
