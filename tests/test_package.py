"""`selfheal package-model`: the shipped checkpoint as a zip, unzipped and used as a checkpoint.

The commands run in process (the ``selfheal_cli`` fixture, cwd the test's tmp_path)."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from selfheal.model.card import CARD_FILE
from selfheal.model.checkpoint import (
    ADAPTER_WEIGHTS_FILE,
    EMBEDDER_HEAD_FILE,
    MANIFEST_FILE,
    META_FILE,
    TFIDF_FILE,
    TOKENIZER_FILE,
    ModelError,
    read_meta,
    shipped_checkpoint,
)
from selfheal.model.package import SUMS_FILE, package_files, package_name, sha256_file, verify, write_zip

TEXTS = [
    "A warm, funny and moving film.",
    "A tedious, joyless slog.",
    "Not bad, not good, just there.",
    "Visually stunning, emotionally empty.",
]


def unzip(path: Path, into: Path) -> Path:
    with zipfile.ZipFile(path) as archive:
        archive.extractall(into)
    return into / path.stem


def test_zip_round_trips_the_predictions(tmp_path, shipped_classifier):
    from selfheal.model.classifier import Classifier

    package = write_zip(shipped_checkpoint(), tmp_path / "dist")
    assert package.path == tmp_path / "dist" / f"{package_name(shipped_checkpoint())}.zip"
    unzipped = unzip(package.path, tmp_path / "x")
    assert verify(unzipped) == package.files
    loaded = Classifier.load(unzipped)
    assert loaded.version == shipped_classifier.version
    assert loaded.members == shipped_classifier.members
    np.testing.assert_allclose(
        loaded.predict_proba(TEXTS), shipped_classifier.predict_proba(TEXTS), rtol=0, atol=1e-6
    )


def test_zip_holds_every_checkpoint_file_and_is_reproducible(tmp_path):
    first = write_zip(shipped_checkpoint(), tmp_path / "a")
    second = write_zip(shipped_checkpoint(), tmp_path / "b")
    assert first.path.read_bytes() == second.path.read_bytes()
    root = shipped_checkpoint()
    shipped = {p.relative_to(root).as_posix(): sha256_file(p) for p in root.rglob("*") if p.is_file()}
    assert first.files == shipped
    assert {"embedder_top/adapter_model.safetensors", "embedder_top/top_layers.json"} <= set(first.files)
    needed = {ADAPTER_WEIGHTS_FILE, TOKENIZER_FILE, META_FILE, TFIDF_FILE}
    assert needed | {EMBEDDER_HEAD_FILE, MANIFEST_FILE, CARD_FILE} <= set(first.files)
    with zipfile.ZipFile(first.path) as archive:
        names = archive.namelist()
        assert names == sorted(names)
        assert {n.split("/", 1)[0] for n in names} == {first.name}
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        card = archive.read(f"{first.name}/{CARD_FILE}").decode()
        sums = archive.read(f"{first.name}/{SUMS_FILE}").decode()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["license"] == "apache-2.0" and meta["pipeline_tag"] == "text-classification"
    assert meta["model-index"][0]["results"][0]["metrics"][0]["type"] == "accuracy"
    assert sorted(sums.splitlines()) == sorted(f"{d}  {n}" for n, d in shipped.items())
    assert (tmp_path / "a" / f"{first.path.name}.sha256").read_text().split()[0] == first.sha256


def test_verify_catches_a_changed_file(tmp_path):
    unzipped = unzip(write_zip(shipped_checkpoint(), tmp_path).path, tmp_path / "x")
    with (unzipped / META_FILE).open("a") as fh:
        fh.write(" ")
    with pytest.raises(ModelError, match=re.escape(f"changed since packaging: {META_FILE}")):
        verify(unzipped)


def test_cli_packages_and_classifies_with_the_unzipped_dir(tmp_path, selfheal_cli):
    result = selfheal_cli("package-model", "--out", "dist")
    assert result.returncode == 0, result.stderr
    name = package_name(shipped_checkpoint())
    count = len(package_files(shipped_checkpoint()))
    assert f"wrote dist/{name}.zip ({count} files + SHA256SUMS" in result.stdout
    unzipped = unzip(tmp_path / "dist" / f"{name}.zip", tmp_path)
    result = selfheal_cli(
        "classify",
        "--json",
        "--set",
        f"paths.checkpoint={unzipped.name}",
        "--set",
        "backup.models=[tfidf]",
        "--set",
        "backup.voters=null",
        *TEXTS[:2],
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["inference"]["label"] for r in records] == ["Positive", "Negative"]
    assert {r["model"]["version"] for r in records} == {read_meta(unzipped)["version"]}
    assert {r["model"]["checkpoint"] for r in records} == {unzipped.name}


def test_cli_refuses_an_incomplete_checkpoint_or_a_card_without_metadata(tmp_path, selfheal_cli):
    broken = tmp_path / "broken"
    shutil.copytree(shipped_checkpoint(), broken)
    (broken / TOKENIZER_FILE).unlink()
    result = selfheal_cli("package-model", "--set", f"paths.checkpoint={broken}", "--out", "dist")
    assert result.returncode == 2 and result.stderr.startswith("error: "), result.stderr
    assert f"lacks {TOKENIZER_FILE}" in result.stderr and len(result.stderr.splitlines()) == 1
    shutil.copy(shipped_checkpoint() / TOKENIZER_FILE, broken)
    card = (broken / CARD_FILE).read_text()
    (broken / CARD_FILE).write_text(card.split("---\n", 2)[2])
    result = selfheal_cli("package-model", "--set", f"paths.checkpoint={broken}", "--out", "dist")
    assert result.returncode == 2 and "no Hugging Face metadata front matter" in result.stderr
    assert not (tmp_path / "dist").exists()


def test_cli_names_an_output_directory_it_cannot_use(tmp_path, selfheal_cli):
    """--out pointing below a regular file: one error line naming it, exit 2, nothing written."""
    (tmp_path / "a-file").write_text("not a directory\n", encoding="utf-8")
    result = selfheal_cli("package-model", "--out", "a-file/dist")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        "error: cannot write the package to a-file/dist (paths.dist_dir, --out): "
    )
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert (tmp_path / "a-file").read_text(encoding="utf-8") == "not a directory\n"
