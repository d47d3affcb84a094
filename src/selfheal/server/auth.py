"""Who may call what: bearer tokens, compared in constant time, and their fingerprints.

Two tokens, both optional, read from files (``--token-file``, ``--review-token-file``) or the
environment (``SELFHEAL_TOKEN``, ``SELFHEAL_REVIEW_TOKEN``), never from the command line:

* the **client token** opens every ``/v1/`` call and the LangGraph API (``/threads...``);
* the **review token** opens the reviewers' endpoints (``/v1/review...``). When it is set, the
  client token does *not* open them (a client cannot label other clients' requests), and it
  opens nothing else. When it is not set, the client token opens the review endpoints too.

No token at all: the API is open (it binds to 127.0.0.1 unless told otherwise). A review token
without a client token is refused at start-up (every ``/v1/`` call must need a token once one is
configured).

A thread remembers the fingerprint of the token it was created under (:func:`fingerprint`, the
SHA-256 of the token, never the token): see :mod:`selfheal.server.threads`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from selfheal.config import ConfigError

TOKEN_ENV = "SELFHEAL_TOKEN"
REVIEW_TOKEN_ENV = "SELFHEAL_REVIEW_TOKEN"
CLIENT = "client"
REVIEW = "review"


def fingerprint(token: str | None) -> str | None:
    """The SHA-256 hex digest of ``token`` (``None`` without one): what a thread stores."""
    return None if token is None else hashlib.sha256(token.encode("utf-8")).hexdigest()


def _read_token(path: Path | None, env: str) -> str | None:
    if path is not None:
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ConfigError(f"cannot read token file {path}: {reason}") from None
        if not token:
            raise ConfigError(f"token file {path} is empty")
        return token
    return os.environ.get(env, "").strip() or None


@dataclass(frozen=True)
class Tokens:
    """The configured tokens (``None``: not set)."""

    client: str | None = None
    review: str | None = None

    def __post_init__(self) -> None:
        if self.review is not None and self.client is None:
            raise ConfigError(
                f"a review token needs a client token too (--token-file or {TOKEN_ENV}): "
                "otherwise the other /v1/ endpoints would be open"
            )
        if self.review is not None and hmac.compare_digest(self.review, self.client or ""):
            raise ConfigError("the review token must differ from the client token")

    @classmethod
    def load(cls, token_file: Path | None = None, review_token_file: Path | None = None) -> Tokens:
        """The tokens from the files, else from ``SELFHEAL_TOKEN`` / ``SELFHEAL_REVIEW_TOKEN``."""
        return cls(_read_token(token_file, TOKEN_ENV), _read_token(review_token_file, REVIEW_TOKEN_ENV))

    @property
    def enabled(self) -> bool:
        """Whether any call needs a token."""
        return self.client is not None

    def scopes(self, presented: str | None) -> set[str]:
        """What ``presented`` opens (compared in constant time with every configured token)."""
        if not self.enabled:
            return {CLIENT, REVIEW}
        if presented is None:
            return set()
        scopes = set()
        if hmac.compare_digest(presented.encode(), (self.client or "").encode()):
            scopes.add(CLIENT)
            if self.review is None:
                scopes.add(REVIEW)
        if self.review is not None and hmac.compare_digest(presented.encode(), self.review.encode()):
            scopes.add(REVIEW)
        return scopes


def presented_token(request: Request) -> str | None:
    """The token of ``Authorization: Bearer <token>``, or of ``x-api-key`` (what the LangGraph
    SDK sends for its ``api_key``)."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    key = request.headers.get("x-api-key")
    return key.strip() or None if key else None


@dataclass(frozen=True)
class Caller:
    """Who is calling: the scopes their token opens and its fingerprint (``None``: no token)."""

    scopes: frozenset[str]
    owner: str | None

    @property
    def reviewer(self) -> bool:
        """Whether this caller may use the review endpoints."""
        return REVIEW in self.scopes


def authorize(request: Request, scope: str) -> Caller:
    """The caller of ``request`` if their token opens ``scope``; else 401."""
    tokens: Tokens = request.app.state.tokens
    token = presented_token(request)
    scopes = tokens.scopes(token)
    if scope not in scopes:
        detail = "missing bearer token" if token is None else "invalid token for this endpoint"
        raise HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})
    return Caller(frozenset(scopes), fingerprint(token) if tokens.enabled else None)


def client(request: Request) -> Caller:
    """FastAPI dependency: a caller with the client token."""
    return authorize(request, CLIENT)


def reviewer(request: Request) -> Caller:
    """FastAPI dependency: a caller with the review token (or the client token when no review
    token is set)."""
    return authorize(request, REVIEW)


ClientCaller = Annotated[Caller, Depends(client)]
ReviewCaller = Annotated[Caller, Depends(reviewer)]
