"""``selfheal serve``: the graph behind an HTTP API (FastAPI + uvicorn).

``app.py`` (the app factory, health, metrics, the ``/v1`` routes), ``service.py`` (what the
endpoints do on the shared :class:`~selfheal.graph.session.Session`), ``langgraph_api.py`` (the
LangGraph SDK's subset), ``auth.py`` (tokens), ``threads.py`` (who created which thread),
``metrics.py`` (Prometheus), ``schemas.py`` (the JSON bodies).
"""
