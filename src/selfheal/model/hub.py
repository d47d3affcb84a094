"""Push a checkpoint to a Hugging Face Hub model repository (``selfheal push``).

The files are those of the model zip (:mod:`selfheal.model.package`): every checkpoint file, the
model card with its metadata and ``SHA256SUMS``. ``huggingface_hub`` does the work
(``create_repo`` + ``upload_folder``); its token comes from ``HF_TOKEN`` or a saved login, its
endpoint from ``HF_ENDPOINT``. Offline, or with the endpoint unreachable, the push fails at once
with one line instead of retrying. (Imported by :mod:`selfheal.errors`: keep it light.)
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class HubError(RuntimeError):
    """The Hub cannot be reached, refuses the token or the upload."""


@dataclass(frozen=True)
class PushResult:
    """What a push did: the repository, the commit and the files sent with their SHA-256."""

    repo_url: str
    commit_url: str
    files: dict[str, str]


def _offline() -> bool:
    return any(
        os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def push(
    directory: Path, repo_id: str, private: bool = False, token: str | None = None, timeout: float = 3.0
) -> PushResult:
    """Upload a checkpoint's package files to the model repository ``repo_id`` (created if needed)."""
    if not REPO_ID.match(repo_id):
        raise HubError(f"--repo-id must be OWNER/NAME (letters, digits, '.', '_', '-'), not '{repo_id}'")
    if _offline():
        raise HubError("cannot push: offline mode is on (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE); unset it")
    from huggingface_hub import HfApi, constants, get_token

    from selfheal.data import hub_reachable
    from selfheal.model.package import package_name, stage

    if not hub_reachable(timeout):
        raise HubError(
            f"cannot push to {repo_id}: the Hugging Face Hub ({constants.ENDPOINT}) is not reachable from here"
        )
    token = token or get_token()
    if not token:
        raise HubError("cannot push: no Hugging Face token (set HF_TOKEN or run 'hf auth login')")
    import httpx
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="selfheal-push-") as tmp:
        folder = Path(tmp) / package_name(directory)
        files = stage(directory, folder)
        try:
            repo_url = api.create_repo(repo_id, private=private or None, exist_ok=True, repo_type="model")
            commit = api.upload_folder(
                folder_path=folder,
                repo_id=repo_id,
                repo_type="model",
                commit_message=f"{folder.name} (selfheal package-model)",
            )
        except (HfHubHTTPError, OfflineModeIsEnabled, httpx.HTTPError, ValueError) as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            raise HubError(f"push to {repo_id} failed: {message}") from None
    return PushResult(repo_url=str(repo_url), commit_url=str(commit.commit_url), files=files)
