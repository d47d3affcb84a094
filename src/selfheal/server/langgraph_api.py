"""The subset of LangGraph's server API that ``langgraph_sdk.get_sync_client(url=...)`` uses for
threads and waiting runs, on the same graph, log and claims as ``/v1``:

* ``POST /threads`` ``{thread_id?, metadata?, if_exists?}``: a new thread (its id is the request
  id of the run that follows);
* ``GET /threads/{thread_id}``, ``GET /threads/{thread_id}/state``: the thread and its state;
* ``POST /threads/search`` ``{status?, limit?, offset?}``: the caller's threads (``"interrupted"``:
  those that wait);
* ``POST /threads/{thread_id}/runs/wait`` ``{"assistant_id": "selfheal", "input": {"text": ...}}``
  starts the thread's one request, ``{"assistant_id": "selfheal", "command": {"resume": answer}}``
  answers its question; either answers with the thread's values and, while it is paused,
  ``"__interrupt__": [{"value", "id"}]``, as LangGraph's server does.

One thread is one request: a second ``input`` on a used thread is a 409 (LangGraph's
``multitask_strategy="reject"``). The one assistant is ``selfheal``. The SDK's ``api_key`` arrives
as ``x-api-key`` and counts as the client token.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from selfheal.server.auth import Caller, ClientCaller
from selfheal.server.service import ApiError, GraphApi

ASSISTANT_ID = "selfheal"
router = APIRouter(tags=["LangGraph API (subset)"])


class ThreadCreate(BaseModel):
    """``POST /threads`` (other fields the SDK may send are ignored)."""

    model_config = ConfigDict(extra="ignore")

    thread_id: uuid.UUID | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"


class ThreadSearch(BaseModel):
    """``POST /threads/search``."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0)


class RunInput(BaseModel):
    """The graph input: one text."""

    model_config = ConfigDict(extra="forbid", strict=True)

    text: str


class RunCommand(BaseModel):
    """``Command(resume=answer)``."""

    model_config = ConfigDict(extra="ignore", strict=True)

    resume: str


class RunWait(BaseModel):
    """``POST /threads/{thread_id}/runs/wait`` (the SDK's other fields, all ``null`` or unused
    here, are ignored)."""

    model_config = ConfigDict(extra="ignore")

    assistant_id: str
    input: RunInput | None = None
    command: RunCommand | None = None


def _api(request: Request) -> GraphApi:
    api: GraphApi | None = request.app.state.api
    if api is None:
        raise ApiError(503, "not ready: the model is loading")
    return api


def _iso(timestamp: float | None) -> str:
    return datetime.fromtimestamp(timestamp or 0.0, UTC).isoformat()


def _thread(api: GraphApi, thread_id: str, caller: Caller) -> dict[str, Any]:
    """The SDK's ``Thread``: id, times, status (``idle`` / ``interrupted``), values, interrupts."""
    view = api.view(thread_id, caller)
    row = api.registry.get(thread_id)
    created = row.created_at if row is not None else view.get("values", {}).get("started_at")
    interrupts: dict[str, list[dict[str, Any]]] = {}
    if view.get("interrupt"):
        paused = api.paused(thread_id)
        if paused is not None:
            interrupts[paused.interrupt_id] = [{"value": paused.value, "id": paused.interrupt_id}]
    return {
        "thread_id": thread_id,
        "created_at": _iso(created),
        "updated_at": _iso(created),
        "metadata": {"graph_id": ASSISTANT_ID, "assistant_id": ASSISTANT_ID},
        "status": "interrupted" if view["status"] == "interrupted" else "idle",
        "values": view.get("values", {}),
        "interrupts": interrupts,
    }


def _state(api: GraphApi, thread_id: str, caller: Caller) -> dict[str, Any]:
    """The SDK's ``ThreadState``."""
    view = api.view(thread_id, caller)
    paused = api.paused(thread_id) if view["status"] == "interrupted" else None
    interrupts = [] if paused is None else [{"value": paused.value, "id": paused.interrupt_id}]
    return {
        "values": view.get("values", {}),
        "next": ["FallbackNode"] if paused is not None else [],
        "checkpoint": {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": None},
        "metadata": {"graph_id": ASSISTANT_ID},
        "created_at": None,
        "parent_checkpoint": None,
        "tasks": [],
        "interrupts": interrupts,
    }


def _values(api: GraphApi, result: dict[str, Any]) -> dict[str, Any]:
    """What ``runs/wait`` answers: the thread's values, plus ``__interrupt__`` while paused."""
    thread_id = result["thread_id"]
    if result["status"] == "done":
        return dict(result.get("values") or {})
    paused = api.paused(thread_id)
    if paused is None:  # answered in between
        return {}
    return {**paused.values, "__interrupt__": [{"value": paused.value, "id": paused.interrupt_id}]}


@router.post("/threads")
async def create_thread(body: ThreadCreate, request: Request, caller: ClientCaller) -> Any:
    """A new thread for one request."""
    api = _api(request)
    thread_id = str(body.thread_id or uuid.uuid4())

    def create() -> dict[str, Any]:
        created = api.registry.create(thread_id, caller.owner, started=False)
        if not created and body.if_exists != "do_nothing":
            raise ApiError(409, f"thread {thread_id} already exists")
        return _thread(api, thread_id, caller)

    return await run_in_threadpool(create)


@router.get("/threads/{thread_id}")
async def get_thread(thread_id: str, request: Request, caller: ClientCaller) -> Any:
    """One thread."""
    api = _api(request)
    return await run_in_threadpool(_thread, api, thread_id, caller)


@router.get("/threads/{thread_id}/state")
async def get_state(thread_id: str, request: Request, caller: ClientCaller) -> Any:
    """A thread's state: its values and, while paused, its interrupt."""
    api = _api(request)
    return await run_in_threadpool(_state, api, thread_id, caller)


@router.post("/threads/search")
async def search_threads(body: ThreadSearch, request: Request, caller: ClientCaller) -> Any:
    """The caller's threads, newest first; ``status: "interrupted"``: those that wait."""
    api = _api(request)

    def search() -> list[dict[str, Any]]:
        found = []
        if body.status in (None, "interrupted"):
            for outcome in api.session.paused():
                row = api.registry.get(outcome.request_id)
                if (row.owner if row is not None else None) == caller.owner:
                    found.append(_thread(api, outcome.request_id, caller))
            found.reverse()  # newest first
        if body.status in (None, "idle"):
            for row in api.registry.of_owner(caller.owner, body.limit + body.offset, 0):
                if api.paused(row.thread_id) is None:
                    found.append(_thread(api, row.thread_id, caller))
        return found[body.offset : body.offset + body.limit]

    return await run_in_threadpool(search)


@router.post("/threads/{thread_id}/runs/wait")
async def run_wait(thread_id: str, body: RunWait, request: Request, caller: ClientCaller) -> Any:
    """Start the thread's request (``input``) or answer its question (``command.resume``), and wait
    until it is decided or paused again."""
    api = _api(request)
    if body.assistant_id != ASSISTANT_ID:
        raise ApiError(
            404, f"unknown assistant {body.assistant_id!r} (the one assistant is {ASSISTANT_ID!r})"
        )
    if (body.input is None) == (body.command is None):
        raise ApiError(422, "give exactly one of input {text} or command {resume}")
    run_graph = request.app.state.run_graph
    if body.input is not None:
        result = await run_graph(request, api.classify, body.input.text, caller, thread_id)
    else:
        assert body.command is not None
        result = await run_graph(request, api.resume, thread_id, body.command.resume, caller)
    return await run_in_threadpool(_values, api, result)
