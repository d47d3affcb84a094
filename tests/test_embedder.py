"""The frozen sentence embedder: weights from the split archive, encoding, the head, the fallback."""

from __future__ import annotations

import io
import logging
import re
import zipfile

import numpy as np
import pytest

from selfheal.model import embedder as emb
from selfheal.model.checkpoint import ModelError


def _split(data: bytes, cuts: list[int], directory) -> list:
    paths, start = [], 0
    for i, end in enumerate([*cuts, len(data)]):
        path = directory / f"archive.zip.{i + 1:03d}"
        path.write_bytes(data[start:end])
        paths.append(path)
        start = end
    return paths


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_concatenated_file_reads_a_zip_split_across_files(tmp_path):
    files = {"a/one.txt": b"first file " * 500, "a/two.bin": bytes(range(256)) * 40}
    data = _zip(files)
    parts = _split(data, [7, 1000, 1001], tmp_path)  # cuts inside headers and payloads, a 1-byte part
    with emb.ConcatenatedFile(parts) as raw:
        assert raw.seek(0, io.SEEK_END) == len(data)
        raw.seek(5)
        assert raw.read(10) == data[5:15]  # a read across the first cut
        raw.seek(0)
        assert raw.read() == data
        with zipfile.ZipFile(raw) as archive:
            assert {n: archive.read(n) for n in files} == files


def _fake_parts(tmp_path, files: dict[str, bytes]) -> list:
    return _split(_zip({f"{emb._ARCHIVE_DIR}/{n}": c for n, c in files.items()}), [100], tmp_path)


def test_extraction_checks_the_pinned_digest_and_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFHEAL_CACHE", str(tmp_path / "cache"))
    fake = {name: b"not the real weights" for name in emb._MODEL_FILES}
    monkeypatch.setattr(emb, "archive_parts", lambda: _fake_parts(tmp_path, fake))
    with pytest.raises(ModelError, match="SHA-256"):
        emb.bundled_embedder_path()
    assert list((tmp_path / "cache").iterdir()) == []  # no half-extracted directory


def test_extraction_of_an_archive_without_the_model_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFHEAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(emb, "archive_parts", lambda: _fake_parts(tmp_path, {"README.md": b"x"}))
    with pytest.raises(ModelError, match="cannot extract the embedder weights"):
        emb.bundled_embedder_path()


def test_missing_weight_packages_name_the_install_command(monkeypatch):
    def missing(name):
        raise emb.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(emb.metadata, "distribution", missing)
    with pytest.raises(ModelError, match=r"requirements-nodeps\.txt"):
        emb.archive_parts()


def test_bundled_weights_extract_once_from_the_installed_packages(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFHEAL_CACHE", str(tmp_path))
    path = emb.bundled_embedder_path()
    assert sorted(p.name for p in path.iterdir()) == sorted([*emb._MODEL_FILES, emb._STAMP])
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert emb.bundled_embedder_path() == path
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp  # not extracted again


@pytest.fixture(scope="module")
def encoder():
    return emb.SentenceEncoder(emb.resolve_embedder(None), batch_size=2)


def test_encoder_gives_unit_vectors_independent_of_batch_order(encoder):
    texts = [
        "A gripping, beautifully acted thriller.",
        "Dull.",
        "The plot makes no sense and the jokes fall flat every single time.",
        "An utterly gripping thriller with fine acting.",
        "",
    ]
    vectors = encoder.encode(texts)
    assert vectors.shape == (5, encoder.dim) == (5, 768)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    reversed_ = encoder.encode(texts[::-1])[::-1]
    np.testing.assert_allclose(vectors, reversed_, atol=2e-3)  # bf16 batches may differ slightly
    similarity = vectors @ vectors.T
    assert similarity[0, 3] > similarity[0, 2] + 0.3  # a paraphrase is closer than an unrelated text


def test_layers_are_pooled_normalised_and_concatenated(encoder):
    texts = ["A gripping, beautifully acted thriller.", "Dull."]
    layered = emb.SentenceEncoder(emb.resolve_embedder(None), layers=[4, -1], batch_size=2)
    assert layered.layers == (4, 12) and layered.dim == 2 * 768
    vectors = layered.encode(texts)
    np.testing.assert_allclose(np.linalg.norm(vectors[:, :768], axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[:, 768:], encoder.encode(texts), atol=2e-3)  # -1 is the last layer
    assert not np.allclose(vectors[:, :768], vectors[:, 768:], atol=0.05)
    with pytest.raises(ModelError, match=r"each must be 1\.\.12"):
        emb.SentenceEncoder(emb.resolve_embedder(None), layers=[13])


def test_head_learns_round_trips_and_saves_identical_bytes(tmp_path):
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 2, 400)
    x = rng.normal(0, 1, (400, 16)) + np.outer(2 * labels - 1, np.ones(16)) * 0.5
    head = emb.EmbeddingHead.train(x, labels, [4, -1], c=1.0)
    assert np.mean(head.predict_proba(x).argmax(1) == labels) > 0.9
    first = head.save(tmp_path).read_bytes()
    assert head.save(tmp_path).read_bytes() == first
    loaded = emb.EmbeddingHead.load(tmp_path)
    assert loaded.layers == (4, -1)
    np.testing.assert_allclose(loaded.predict_proba(x), head.predict_proba(x))


def test_a_head_over_3_labels_is_multinomial_and_round_trips(tmp_path):
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 3, 600)
    centres = rng.normal(0, 1, (3, 16))
    x = centres[labels] + rng.normal(0, 0.5, (600, 16))
    head = emb.EmbeddingHead.train(x, labels, [-1], c=1.0, names=["negative", "neutral", "positive"])
    probs = head.predict_proba(x)
    assert probs.shape == (600, 3) and head.n_labels == 3
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert np.mean(probs.argmax(1) == labels) > 0.9
    loaded = emb.EmbeddingHead.load(head.save(tmp_path).parent)
    assert loaded.labels == ("negative", "neutral", "positive")
    np.testing.assert_allclose(loaded.predict_proba(x), probs)


def test_corrupt_head_file_is_a_model_error(tmp_path):
    (tmp_path / emb.EMBEDDER_HEAD_FILE).write_bytes(b"garbage")
    with pytest.raises(ModelError, match=re.escape(emb.EMBEDDER_HEAD_FILE)):
        emb.EmbeddingHead.load(tmp_path)


def test_unknown_embedder_path_is_a_model_error():
    with pytest.raises(ModelError, match="not a local directory"):
        emb.resolve_embedder("no/such/encoder")


TEXTS = ["An absolute joy from start to finish.", "A tedious, joyless slog.", "It was fine, I guess."]


def test_shipped_checkpoint_uses_the_embedder_and_can_run_without_it(shipped_classifier):
    from selfheal.model.calibrate import softmax
    from selfheal.model.classifier import Classifier

    assert set(shipped_classifier.members) == {"lora", "tfidf", "embedder"}
    small = Classifier.load(None, use_embedder=False)
    assert set(small.members) == {"lora", "tfidf"}
    fallback = shipped_classifier.meta["without_embedder"]
    assert small.temperature == fallback["temperature"] != shipped_classifier.temperature
    assert small.tfidf_weight == fallback["tfidf_weight"]
    lora_tfidf = shipped_classifier.encoder_logits(TEXTS) + small.tfidf_weight * np.log(
        small._tfidf.predict_proba(TEXTS)
    )
    np.testing.assert_allclose(small.predict_proba(TEXTS), softmax(lora_tfidf, small.temperature), atol=1e-9)
    assert not np.allclose(small.predict_proba(TEXTS), shipped_classifier.predict_proba(TEXTS))


def test_missing_embedder_weights_fall_back_with_a_warning(monkeypatch, caplog):
    from selfheal.model import classifier as clf

    def unavailable(name):
        raise emb.EmbedderNotInstalled("the embedder weights are not installed")

    monkeypatch.setattr(emb, "resolve_embedder", unavailable)
    with caplog.at_level(logging.WARNING, logger=clf.__name__):
        degraded = clf.Classifier.load(None)
    assert set(degraded.members) == {"lora", "tfidf"}
    assert "without the sentence embedder" in caplog.text
    expected = clf.Classifier.load(None, use_embedder=False).predict_proba(TEXTS)
    np.testing.assert_allclose(degraded.predict_proba(TEXTS), expected)


def test_a_damaged_embedder_is_an_error_not_a_silent_fallback(monkeypatch):
    """Only weights that are not installed fall back; other embedder errors name the problem."""
    from selfheal.model import classifier as clf

    def damaged(name):
        raise ModelError("cannot load the sentence embedder /cache/all-mpnet-base-v2: bad header")

    monkeypatch.setattr(emb, "resolve_embedder", damaged)
    with pytest.raises(ModelError, match="bad header"):
        clf.Classifier.load(None)
