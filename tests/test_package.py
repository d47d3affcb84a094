"""`selfheal package-model`: the shipped checkpoint as a zip, unzipped and used as a checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from selfheal.model.checkpoint import ModelError, read_meta, shipped_checkpoint
from selfheal.model.package import SUMS_FILE, package_files, package_name, sha256_file, verify, write_zip

TEXTS = [
    "A warm, funny and moving film.",
    "A tedious, joyless slog.",
    "Not bad, not good, just there.",
    "Visually stunning, emotionally empty.",
]


def selfheal(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess (this interpreter, this source tree)."""
    return subprocess.run(
        [sys.executable, "-m", "selfheal", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env or dict(os.environ, NO_COLOR="1", HF_HUB_OFFLINE="1"),
        timeout=300,
    )


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
    shipped = {p.name: sha256_file(p) for p in shipped_checkpoint().iterdir() if p.is_file()}
    assert first.files == shipped
    needed = {"adapter_model.safetensors", "tokenizer.json", "selfheal.json", "backup_tfidf.json.gz"}
    assert needed | {"embedder_head.json.gz", "split_manifest.json", "README.md"} <= set(first.files)
    with zipfile.ZipFile(first.path) as archive:
        names = archive.namelist()
        assert names == sorted(names)
        assert {n.split("/", 1)[0] for n in names} == {first.name}
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        card = archive.read(f"{first.name}/README.md").decode()
        sums = archive.read(f"{first.name}/{SUMS_FILE}").decode()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["license"] == "apache-2.0" and meta["pipeline_tag"] == "text-classification"
    assert meta["model-index"][0]["results"][0]["metrics"][0]["type"] == "accuracy"
    assert sorted(sums.splitlines()) == sorted(f"{d}  {n}" for n, d in shipped.items())
    assert (tmp_path / "a" / f"{first.path.name}.sha256").read_text().split()[0] == first.sha256


def test_verify_catches_a_changed_file(tmp_path):
    unzipped = unzip(write_zip(shipped_checkpoint(), tmp_path).path, tmp_path / "x")
    with (unzipped / "selfheal.json").open("a") as fh:
        fh.write(" ")
    with pytest.raises(ModelError, match=r"changed since packaging: selfheal\.json"):
        verify(unzipped)


def test_cli_packages_and_classifies_with_the_unzipped_dir(tmp_path):
    result = selfheal("package-model", "--out", "dist", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    name = package_name(shipped_checkpoint())
    count = len(package_files(shipped_checkpoint()))
    assert f"wrote dist/{name}.zip ({count} files + SHA256SUMS" in result.stdout
    unzipped = unzip(tmp_path / "dist" / f"{name}.zip", tmp_path)
    result = selfheal(
        "classify",
        "--json",
        "--set",
        f"paths.checkpoint={unzipped.name}",
        "--set",
        "backup.models=[tfidf]",
        *TEXTS[:2],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["inference"]["label"] for r in records] == ["Positive", "Negative"]
    assert {r["model"]["version"] for r in records} == {read_meta(unzipped)["version"]}
    assert {r["model"]["checkpoint"] for r in records} == {unzipped.name}


def test_cli_refuses_an_incomplete_checkpoint_or_a_card_without_metadata(tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(shipped_checkpoint(), broken)
    (broken / "tokenizer.json").unlink()
    result = selfheal("package-model", "--set", f"paths.checkpoint={broken}", "--out", "dist", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("error: "), result.stderr
    assert "lacks tokenizer.json" in result.stderr and len(result.stderr.splitlines()) == 1
    shutil.copy(shipped_checkpoint() / "tokenizer.json", broken)
    card = (broken / "README.md").read_text()
    (broken / "README.md").write_text(card.split("---\n", 2)[2])
    result = selfheal("package-model", "--set", f"paths.checkpoint={broken}", "--out", "dist", cwd=tmp_path)
    assert result.returncode == 2 and "no Hugging Face metadata front matter" in result.stderr
    assert not (tmp_path / "dist").exists()


def test_cli_names_an_output_directory_it_cannot_use(tmp_path):
    """--out pointing below a regular file: one error line naming it, exit 2, nothing written."""
    (tmp_path / "a-file").write_text("not a directory\n", encoding="utf-8")
    result = selfheal("package-model", "--out", "a-file/dist", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        "error: cannot write the package to a-file/dist (paths.dist_dir, --out): "
    )
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert (tmp_path / "a-file").read_text(encoding="utf-8") == "not a directory\n"
