"""`selfheal push`: uploads to a local stand-in of the Hub API, and fails fast without a Hub.

The stand-in is a small HTTP server on 127.0.0.1, started by the test, that answers the requests
``create_repo`` and ``upload_folder`` of huggingface_hub make (repo creation, card metadata check,
pre-upload, commit) and records what arrives. It asks for every file inline in the commit
("regular" upload mode), which is what the Hub does for small files; large-file storage is not
imitated. huggingface_hub reads ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` when it is imported, and
this test process imported it long ago, so here the CLI runs as a real process.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import process_env, selfheal_argv
from selfheal.model.checkpoint import shipped_checkpoint
from selfheal.model.package import SUMS_FILE, entry_name, package_files, sha256_file

REPO_ID = "someone/selfheal-sentiment"
# Offline switches and any token of the machine's user: the test's subprocess sets its own.
DROPPED = {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HF_TOKEN_PATH", "HUGGING_FACE_HUB_TOKEN"}


class HubStandIn(BaseHTTPRequestHandler):
    """Just enough of the Hub API for create_repo + upload_folder; records every request."""

    requests: list[tuple[str, str]]
    created: list[dict[str, Any]]
    cards: list[str]
    commits: list[dict[str, Any]]

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.requests.append(("GET", self.path))
        self._reply(404, {"error": "not part of the stand-in"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        path = self.path.split("?")[0]
        self.requests.append(("POST", path))
        if self.headers.get("Authorization") != "Bearer hf_standin_token":
            self._reply(401, {"error": "bad token"})
        elif path == "/api/repos/create":
            payload = json.loads(body)
            self.created.append(payload)
            self._reply(200, {"url": f"{self.server.url}/{payload['organization']}/{payload['name']}"})
        elif path == "/api/validate-yaml":
            content = json.loads(body)["content"]
            self.cards.append(content)
            self._reply(200, {"errors": [], "warnings": []})
        elif path == f"/api/models/{REPO_ID}/preupload/main":
            files = json.loads(body)["files"]
            modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
            self._reply(200, {"files": modes})
        elif path == f"/api/models/{REPO_ID}/commit/main":
            lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
            files = {
                line["value"]["path"]: base64.b64decode(line["value"]["content"])
                for line in lines
                if line["key"] == "file"
            }
            header = next(line["value"] for line in lines if line["key"] == "header")
            self.commits.append({"header": header, "files": files, "keys": [line["key"] for line in lines]})
            self._reply(
                200,
                {"commitUrl": f"{self.server.url}/{REPO_ID}/commit/{'0' * 40}", "commitOid": "0" * 40},
            )
        else:
            self._reply(404, {"error": "not part of the stand-in"})


@pytest.fixture
def hub():
    """The stand-in, serving on a free port of 127.0.0.1 for one test."""
    handler = type("Handler", (HubStandIn,), {"requests": [], "created": [], "cards": [], "commits": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.url, handler
    server.shutdown()
    server.server_close()


def hub_env(tmp_path: Path, endpoint: str, token: str | None = "hf_standin_token") -> dict[str, str]:
    """The environment of a user who is online: no offline switches, a token, this endpoint."""
    env = {k: v for k, v in process_env().items() if k not in DROPPED}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1")
    if token:
        env["HF_TOKEN"] = token
    return env


def push(
    tmp_path: Path, env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``selfheal push ARGS`` as a real process (``timeout``: it must not hang on retries)."""
    return subprocess.run(
        selfheal_argv("push", *args), capture_output=True, text=True, cwd=tmp_path, env=env, timeout=timeout
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr


def test_push_uploads_every_packaged_file(tmp_path, hub):
    url, record = hub
    result = push(tmp_path, hub_env(tmp_path, url), "--repo-id", REPO_ID, "--private")
    assert result.returncode == 0, result.stderr
    root = shipped_checkpoint()
    expected = {entry_name(root, p): sha256_file(p) for p in package_files(root)}
    assert "embedder_top/top_layers.json" in expected  # the voter's files, in their folder
    assert f"pushed {len(expected)} files + SHA256SUMS to {url}/{REPO_ID}" in result.stdout
    assert record.created == [
        {"name": "selfheal-sentiment", "organization": "someone", "visibility": "private", "type": "model"}
    ]
    assert len(record.commits) == 1
    arrived = record.commits[0]["files"]
    assert set(arrived) == set(expected) | {SUMS_FILE}
    assert {
        name: hashlib.sha256(data).hexdigest() for name, data in arrived.items() if name != SUMS_FILE
    } == expected
    sums = dict(line.split("  ")[::-1] for line in arrived[SUMS_FILE].decode().splitlines())
    assert sums == expected
    metadata = yaml.safe_load(record.cards[0].split("---\n")[1])
    assert metadata["library_name"] == "peft" and metadata["license"] == "apache-2.0"
    assert "selfheal-" in record.commits[0]["header"]["summary"]


def test_push_fails_fast_offline_without_a_hub_or_without_a_token(tmp_path, hub):
    url, record = hub
    cases = [
        (dict(hub_env(tmp_path, url), HF_HUB_OFFLINE="1"), "offline mode is on"),
        (hub_env(tmp_path, "http://127.0.0.1:9"), "is not reachable from here"),  # discard port: refused
        (hub_env(tmp_path, url, token=None), "no Hugging Face token"),
    ]
    for env, fragment in cases:
        assert_one_line_error(push(tmp_path, env, "--repo-id", REPO_ID, timeout=60), fragment)
    assert_one_line_error(push(tmp_path, hub_env(tmp_path, url), "--repo-id", "no-owner"), "OWNER/NAME")
    assert record.requests == []  # nothing was sent anywhere


def test_push_reports_a_refused_token_in_one_line(tmp_path, hub):
    url, record = hub
    result = push(tmp_path, hub_env(tmp_path, url, token="hf_wrong"), "--repo-id", REPO_ID)
    assert_one_line_error(result, f"push to {REPO_ID} failed")
    assert record.requests[0] == ("POST", "/api/repos/create") and record.commits == []
