"""The model as one file: a checkpoint directory packed into ``selfheal-<version>.zip``.

The zip holds one folder, ``selfheal-<version>/``, with every file of the checkpoint (adapter,
tokenizer, ``selfheal.json`` with the temperature, TF-IDF model, embedder head, split manifest,
training record and the model card with its Hugging Face metadata) and ``SHA256SUMS`` listing the
SHA-256 of each (``sha256sum -c SHA256SUMS`` checks an unzipped copy). Entries are sorted and
carry a fixed timestamp, so the same checkpoint always gives the same bytes. The unzipped folder
is a checkpoint: ``selfheal run --set paths.checkpoint=selfheal-<version>``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from selfheal.logs.jsonl import StorageError
from selfheal.model.backup import TFIDF_FILE
from selfheal.model.card import CARD_FILE, card_metadata
from selfheal.model.checkpoint import (
    FULL_WEIGHTS_FILE,
    MANIFEST_FILE,
    META_FILE,
    ModelError,
    read_meta,
    sha256_file,
)
from selfheal.model.embedder import EMBEDDER_HEAD_FILE

SUMS_FILE = "SHA256SUMS"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry: reproducible bytes
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


@dataclass(frozen=True)
class Package:
    """A written model zip: where it is, its name inside, what it holds and its digest."""

    path: Path
    name: str
    files: dict[str, str]  # file name -> SHA-256, SHA256SUMS itself excluded
    sha256: str

    @property
    def size(self) -> int:
        """Bytes of the zip."""
        return self.path.stat().st_size


def package_name(directory: Path) -> str:
    """``selfheal-<version>`` of a checkpoint (its ``selfheal.json`` version)."""
    version = str(read_meta(directory).get("version") or "unversioned")
    return "selfheal-" + re.sub(r"[^A-Za-z0-9._-]+", "_", version)


def package_files(directory: Path) -> list[Path]:
    """The checkpoint's files, sorted, after checking that everything inference needs is there."""
    directory = Path(directory)
    meta = read_meta(directory)
    weights = (FULL_WEIGHTS_FILE,) if meta.get("method") == "full" else ADAPTER_FILES
    needed = [META_FILE, MANIFEST_FILE, CARD_FILE, *weights, *TOKENIZER_FILES]
    needed += [TFIDF_FILE] if float(meta.get("tfidf_weight") or 0) > 0 else []
    needed += [EMBEDDER_HEAD_FILE] if float(meta.get("embedder_weight") or 0) > 0 else []
    missing = [name for name in needed if not (directory / name).is_file()]
    if missing:
        raise ModelError(f"the checkpoint {directory} lacks {', '.join(missing)}: nothing packaged")
    card_metadata(directory)  # the card must carry its Hugging Face metadata
    return sorted(
        (
            p
            for p in directory.rglob("*")
            if p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(directory).parts)
            and p.name != SUMS_FILE
        ),
        key=lambda p: p.relative_to(directory).as_posix(),
    )


def entry_name(directory: Path, path: Path) -> str:
    """A packaged file's name: its path inside the checkpoint (``embedder_top/...`` for the voter)."""
    return Path(path).relative_to(directory).as_posix()


def sums_text(digests: dict[str, str]) -> str:
    """``SHA256SUMS`` in the format of ``sha256sum`` (two spaces, sorted by name)."""
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(digests.items()))


def stage(directory: Path, target: Path) -> dict[str, str]:
    """Copy the checkpoint's files and their ``SHA256SUMS`` into ``target``; the digests by name."""
    target.mkdir(parents=True, exist_ok=True)
    digests = {}
    for path in package_files(directory):
        name = entry_name(directory, path)
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target / name)
        digests[name] = sha256_file(target / name)
    (target / SUMS_FILE).write_text(sums_text(digests), encoding="utf-8")
    return digests


def write_zip(directory: Path, out_dir: Path) -> Package:
    """Write ``out_dir/selfheal-<version>.zip`` (and its ``.sha256``) from a checkpoint."""
    directory, out_dir = Path(directory), Path(out_dir)
    name = package_name(directory)
    files = package_files(directory)
    digests = {entry_name(directory, p): sha256_file(p) for p in files}
    entries = [(entry_name(directory, p), p.read_bytes()) for p in files]
    entries += [(SUMS_FILE, sums_text(digests).encode())]
    target = out_dir / f"{name}.zip"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".zip", dir=out_dir)
    except OSError as exc:
        raise StorageError.wrap("write the package to", f"{out_dir} (paths.dist_dir, --out)", exc) from None
    try:
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w") as archive:
            for entry, data in sorted(entries):
                info = zipfile.ZipInfo(f"{name}/{entry}", date_time=ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, data, compresslevel=9)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a release asset is world-readable
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    digest = sha256_file(target)
    (out_dir / f"{name}.zip.sha256").write_text(f"{digest}  {target.name}\n", encoding="utf-8")
    return Package(path=target, name=name, files=digests, sha256=digest)


def verify(directory: Path) -> dict[str, str]:
    """Check an unpacked package against its ``SHA256SUMS``; the digests by name."""
    directory = Path(directory)
    try:
        lines = (directory / SUMS_FILE).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ModelError(f"{directory} is not an unpacked selfheal package: {exc.strerror or exc}") from None
    digests = {name: digest for digest, name in (line.split("  ", 1) for line in lines if line.strip())}
    bad = [n for n, d in digests.items() if not (directory / n).is_file() or sha256_file(directory / n) != d]
    if bad:
        raise ModelError(f"{directory}: missing or changed since packaging: {', '.join(sorted(bad))}")
    return digests
