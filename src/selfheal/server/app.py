"""The FastAPI app of ``selfheal serve``: the ``/v1`` API, health, metrics, the LangGraph subset.

:func:`create_app` builds it; the model, the graph session and the thread registry load in its
lifespan (so ``/healthz`` answers at once and ``/readyz`` says when they are there). Every graph
call runs in a worker thread (``run_in_threadpool``), at most ``server.max_inflight`` at once:
one more gets 503 with ``Retry-After`` right away, so no queue grows without bound. With
``fallback.answer_timeout`` set, a task gives "no answer" to client questions left open longer. A call that
has started always finishes and is logged, even if its client goes away; on SIGTERM uvicorn
stops accepting, lets the calls in flight finish, then runs the lifespan's shutdown; a paused
request stays paused in the checkpointer.

Every error is ``{"detail": "<one line>"}``: bad JSON 400, a missing / wrong-typed / unknown
field 422, a body over ``server.max_body_bytes`` 413, a missing or wrong token 401, another
token's thread 403, unknown thread 404, nothing to answer or another answer won 409.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import selfheal
from selfheal.config import Config
from selfheal.graph.services import Services
from selfheal.server.auth import ClientCaller, ReviewCaller, Tokens
from selfheal.server.metrics import Metrics
from selfheal.server.schemas import (
    BatchRequest,
    BatchResult,
    ClassifyRequest,
    ClassifyResult,
    Problem,
    ResumeRequest,
    ReviewQueue,
    ReviewRequest,
    ThreadView,
)
from selfheal.server.service import ApiError, GraphApi

T = TypeVar("T")
LOGGER = logging.getLogger("selfheal.server")
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (400, 401, 403, 404, 409, 413, 422, 503)
}


class BodyLimit:
    """Refuse a request body larger than ``max_bytes`` with 413 (by its Content-Length, or while
    it is read when it has none)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            response = JSONResponse({"detail": self._detail()}, status_code=413)
            await response(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, self._detail())
            return message

        await self.app(scope, limited, send)

    def _detail(self) -> str:
        return f"request body larger than {self.max_bytes} bytes (server.max_body_bytes)"


def _one_line(exc: RequestValidationError) -> tuple[int, str]:
    """A validation error as (status, one line): 400 for a body that is not JSON, else 422."""
    errors = exc.errors()
    if not errors:
        return 422, "invalid request"
    first = errors[0]
    if first.get("type") == "json_invalid":
        return 400, "request body is not valid JSON"
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
    message = str(first.get("msg", "invalid")).splitlines()[0]
    if first.get("type") == "missing":
        return 422, f"{where}: field required"
    if first.get("type") == "extra_forbidden":
        return 422, f"{where}: unknown field"
    if first.get("type") == "model_attributes_type":
        return 422, "request body must be a JSON object"
    return 422, f"{where}: {message}"


def create_app(
    config: Config,
    db_url: str | None = None,
    tokens: Tokens | None = None,
    services: Services | None = None,
) -> FastAPI:
    """The app; ``services`` (tests) are used instead of loading the models in the lifespan."""
    tokens = tokens or Tokens()
    db_url = db_url or config.storage.url

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from selfheal.cli import common
        from selfheal.server.service import Serialized, locked_services, open_session
        from selfheal.server.threads import ThreadRegistry

        def load() -> tuple[GraphApi, Callable[[], None]]:
            shared = locked_services(services or common.make_services(config))
            session, close = open_session(shared, db_url)
            session.claims = Serialized(session.claims)  # type: ignore[assignment]  # see Serialized
            session.finish_unrecorded()  # as `selfheal review` does at start
            session.recover()
            registry = ThreadRegistry.open(Path(config.paths.log_dir), db_url)
            metrics = app.state.metrics
            api = GraphApi(session, registry, metrics)
            shared.log.event(f"serve: ready (model {getattr(shared.classifier, 'version', '?')})")

            def closing() -> None:
                registry.close()
                close()

            return api, closing

        api, closing = await run_in_threadpool(load)
        app.state.api = api
        sweeper = None
        if config.fallback.answer_timeout is not None:
            sweeper = asyncio.create_task(expire_questions(api, config.fallback.answer_timeout))
        try:
            yield
        finally:
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            app.state.api = None
            closing()

    app = FastAPI(
        title="selfheal",
        version=selfheal.__version__,
        description="A self-healing sentiment classifier: it asks when it is unsure. "
        "Paused requests wait on their thread for an answer.",
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.tokens = tokens
    app.state.api = None
    app.state.inflight = 0
    app.state.metrics = Metrics(lambda: _pending(app))
    app.add_middleware(BodyLimit, max_bytes=config.server.max_body_bytes)

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Any]) -> Response:
        start = time.perf_counter()
        status = 500
        try:
            response: Response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            endpoint = getattr(route, "path", "unmatched")
            app.state.metrics.observe(endpoint, request.method, status, time.perf_counter() - start)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, detail = _one_line(exc)
        return JSONResponse({"detail": detail}, status_code=status)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        from selfheal.errors import USER_ERRORS

        if isinstance(exc, USER_ERRORS):  # storage full, a damaged checkpoint file...
            return JSONResponse({"detail": str(exc).splitlines()[0]}, status_code=503)
        LOGGER.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__})"}, status_code=500)

    async def run_graph(request: Request, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` in a worker thread, if fewer than ``server.max_inflight`` run; else 503."""
        state = request.app.state
        if state.api is None:
            raise ApiError(503, "not ready: the model is loading")
        if state.inflight >= config.server.max_inflight:
            state.metrics.rejected.inc()
            retry = str(config.server.retry_after)
            raise ApiError(503, "too many requests in flight; retry later", {"Retry-After": retry})
        state.inflight += 1
        state.metrics.inflight.inc()
        try:
            return await run_in_threadpool(func, *args)
        finally:
            state.inflight -= 1
            state.metrics.inflight.dec()

    app.state.run_graph = run_graph

    def the_api(request: Request) -> GraphApi:
        api: GraphApi | None = request.app.state.api
        if api is None:
            raise ApiError(503, "not ready: the model is loading")
        return api

    @app.post(
        "/v1/classify", response_model=ClassifyResult, response_model_exclude_none=True, responses=ERRORS
    )
    async def classify(body: ClassifyRequest, request: Request, caller: ClientCaller) -> Any:
        """Classify one text. Comes back `done` with its record, or `interrupted` with the question
        the thread waits at (answer it with `POST /v1/threads/{thread_id}/resume`)."""
        api = the_api(request)
        thread = None if body.thread_id is None else str(body.thread_id)
        return await run_graph(request, api.classify, body.text, caller, thread)

    @app.post(
        "/v1/classify/batch", response_model=BatchResult, response_model_exclude_none=True, responses=ERRORS
    )
    async def classify_batch(body: BatchRequest, request: Request, caller: ClientCaller) -> Any:
        """Classify many texts in one model batch, never waiting for answers (like `selfheal
        classify`): an unsure one goes to the review queue unless the no-person rule holds."""
        api = the_api(request)
        return {"results": await run_graph(request, api.batch, body.texts, caller)}

    @app.post(
        "/v1/threads/{thread_id}/resume",
        response_model=ClassifyResult,
        response_model_exclude_none=True,
        responses=ERRORS,
    )
    async def resume(thread_id: str, body: ResumeRequest, request: Request, caller: ClientCaller) -> Any:
        """Answer the question a thread waits at. 404 unknown thread, 403 another token's thread,
        409 nothing waits (or another answer won), 422 an answer that is not one of the choices."""
        api = the_api(request)
        return await run_graph(request, api.resume, thread_id, body.answer, caller, body.interrupt_id)

    @app.get(
        "/v1/threads/{thread_id}",
        response_model=ThreadView,
        response_model_exclude_none=True,
        responses=ERRORS,
    )
    async def thread(thread_id: str, request: Request, caller: ClientCaller) -> Any:
        """A thread's status (`idle`, `interrupted`, `done`), values and pending interrupt."""
        api = the_api(request)
        return await run_in_threadpool(api.view, thread_id, caller)

    @app.get("/v1/review", response_model=ReviewQueue, responses=ERRORS)
    async def review_queue(
        request: Request,
        caller: ReviewCaller,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
        questions: Annotated[bool, Query(description="Also list questions left open by clients.")] = False,
    ) -> Any:
        """The requests waiting for a reviewer, oldest first."""
        api = the_api(request)
        return await run_in_threadpool(api.review_queue, limit, offset, questions)

    @app.post(
        "/v1/review/{thread_id}",
        response_model=ClassifyResult,
        response_model_exclude_none=True,
        responses=ERRORS,
    )
    async def review_answer(
        thread_id: str, body: ReviewRequest, request: Request, caller: ReviewCaller
    ) -> Any:
        """A reviewer's label for a paused request (the same rules as resume; logged `human_review`)."""
        api = the_api(request)
        return await run_graph(request, api.review_answer, thread_id, body.label)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers (touches nothing)."""
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"model": Problem}})
    async def readyz(request: Request) -> Any:
        """Readiness: the model is loaded and the database answers; else 503."""
        api: GraphApi | None = request.app.state.api
        if api is None:
            return JSONResponse({"detail": "not ready: the model is loading"}, status_code=503)
        try:
            await run_in_threadpool(api.ready)
        except Exception as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return JSONResponse({"detail": f"database unreachable: {reason}"}, status_code=503)
        return {"status": "ready"}

    @app.get("/metrics")
    def metrics() -> Response:
        """Prometheus metrics (text format)."""
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    from selfheal.server.langgraph_api import router as langgraph_router

    app.include_router(langgraph_router)
    return app


async def expire_questions(api: GraphApi, timeout: float) -> None:
    """Every ``timeout / 2`` seconds (1-30), give "no answer" to the client questions older than
    ``timeout`` (:meth:`GraphApi.expire_questions`)."""
    interval = min(30.0, max(1.0, timeout / 2))
    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(api.expire_questions, timeout)
        except Exception:  # a busy database: try again next time
            LOGGER.exception("expiring unanswered questions failed")


def _pending(app: FastAPI) -> float:
    api: GraphApi | None = app.state.api
    if api is None:
        return float("nan")
    try:
        return api.pending_count()
    except Exception:
        return float("nan")
