"""The newsrec HTTP API: an application factory, no module-level app (that is ``api.wsgi``).

``app.extensions`` holds the per-app objects:

* ``"newsrec"``: the :class:`recommender.engine.Engine` (swapped models live inside it)
* ``"newsrec.store"``: the store the engine was built on (None when an engine is injected)
* ``"newsrec.security"``: :class:`api.auth.Security` (API keys, reader tokens)
* ``"newsrec.metrics"``: :class:`api.metrics.Metrics`
* ``"newsrec.format_time"``: ``recommender.domain.format_time`` memoized for this app (pure)
* ``"newsrec.ratelimit"``: the Flask-Limiter ``Limiter`` (absent when limits are off)
* ``"newsrec.experiments"``: the :class:`recommender.experiments.router.ExperimentRouter` (None
  when an engine is injected without a store: no experiments then)
"""

from __future__ import annotations

import os
import time
from logging import getLogger
from pathlib import Path
from typing import Any

from flask import Flask

from recommender.config import ENV_DB, ENV_HOME, ENV_MODELS, Settings
from recommender.security import ENV_TOKEN_SECRET, KEYS_FILE, KeyStore, ReaderTokens, load_token_secret
from recommender.store.base import Store

from .auth import EXTENSION as SECURITY_EXTENSION
from .auth import Security, SharedKeys
from .errors import register_error_handlers
from .jsonio import ReusedEncoderJSONProvider
from .logging import init_request_logging
from .metrics import Metrics
from .ratelimit import init_rate_limits
from .routes import register_blueprints
from .routes.common import FORMAT_TIME_EXTENSION, ITEMS_JSON_EXTENSION, memo_format_time
from .web import init_web

# ``api.logging`` (the access log) shadows the stdlib name inside this package namespace.
log = getLogger(__name__)

DEFAULT_MAX_CONTENT_LENGTH = 1 << 20
_OBJECTS = ("ENGINE", "STORE", "ENGINE_CONFIG")


ENV_FEATURE_LOG_RATE = "NEWSREC_FEATURE_LOG_RATE"
ENV_EXPLORE_EPSILON = "NEWSREC_EXPLORE_EPSILON"
ENV_LAG_SECONDS = "NEWSREC_LAG_SECONDS"


def engine_config_from_env(environ: dict[str, str]):
    """The engine's knobs an operator sets in the environment: ``NEWSREC_FEATURE_LOG_RATE`` (share
    of feeds whose feature vectors are logged, default 0.05), ``NEWSREC_EXPLORE_EPSILON`` (share of
    feeds drawn by the exploration stage, default 0: off) and ``NEWSREC_LAG_SECONDS`` (how far
    behind other workers' and hosts' writes a list may be at most, 0-2 s; unset: 1 on PostgreSQL,
    whose notices of writes end it within milliseconds, 0 on SQLite; see
    ``recommender.serving.freshness``). A bad value stops the start with a message, not the first
    request."""
    from recommender.serving.engine import MAX_LAG_SECONDS, EngineConfig

    values = {}
    for env, field, top, what in ((ENV_FEATURE_LOG_RATE, "feature_log_rate", 1.0, "a share of feeds"),
                                  (ENV_EXPLORE_EPSILON, "explore_epsilon", 1.0, "a share of feeds"),
                                  (ENV_LAG_SECONDS, "lag_seconds", MAX_LAG_SECONDS, "seconds")):
        raw = environ.get(env)
        if raw is None or raw.strip() == "":
            continue
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not 0.0 <= value <= top:
            raise ValueError(f"{env} must be a number from 0 to {top:g} ({what}); got {raw!r}")
        values[field] = value
    return EngineConfig(**values)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the API.

    Parameters
    ----------
    config : dict, optional
        Flask config overrides. newsrec keys: ``NEWSREC_HOME``, ``NEWSREC_DB``, ``NEWSREC_MODELS``
        (defaults from the environment, as the CLI), ``NEWSREC_TOKEN_SECRET``,
        ``MAX_CONTENT_LENGTH`` (1 MiB), ``START_BACKGROUND`` (default: not ``TESTING``),
        ``PROMETHEUS_MULTIPROC_DIR`` (default from the environment), ``NEWSREC_RATELIMIT``,
        ``NEWSREC_RATELIMIT_READER``, ``NEWSREC_RATELIMIT_ANONYMOUS``, ``NEWSREC_RATELIMIT_STORAGE``
        (defaults from the environment, see :mod:`api.ratelimit`). Objects, not kept in
        ``app.config``: ``ENGINE`` (an engine to use instead of building one), ``STORE``,
        ``ENGINE_CONFIG`` (an ``EngineConfig``; without one, ``NEWSREC_FEATURE_LOG_RATE``,
        ``NEWSREC_EXPLORE_EPSILON`` and ``NEWSREC_LAG_SECONDS`` from here or the environment set its
        feature log, exploration and lag).
    """
    config = dict(config or {})
    objects = {name: config.pop(name, None) for name in _OBJECTS}

    environ = dict(os.environ)
    for key in (ENV_HOME, ENV_DB, ENV_MODELS):
        if config.get(key):
            environ[key] = str(config[key])
    if config.get(ENV_HOME) and not config.get(ENV_DB):
        environ.pop(ENV_DB, None)  # a home given here wins over the environment's paths
    if config.get(ENV_HOME) and not config.get(ENV_MODELS):
        environ.pop(ENV_MODELS, None)
    settings = Settings.from_env(environ)

    app = Flask(__name__, static_folder=None)
    app.config.update(
        NEWSREC_TOKEN_SECRET=settings.extra.get(ENV_TOKEN_SECRET),
        MAX_CONTENT_LENGTH=DEFAULT_MAX_CONTENT_LENGTH,
        START_BACKGROUND=None,
        PROMETHEUS_MULTIPROC_DIR=os.environ.get("PROMETHEUS_MULTIPROC_DIR"),
    )
    app.config.update(config)
    app.config.update(NEWSREC_HOME=str(settings.home), NEWSREC_DB=settings.db,
                      NEWSREC_MODELS=str(settings.models_dir))
    app.json = ReusedEncoderJSONProvider(app)  # keys unsorted, UTF-8; one encoder for every response

    home = Path(app.config["NEWSREC_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    secret_env = {ENV_TOKEN_SECRET: app.config["NEWSREC_TOKEN_SECRET"]} if app.config["NEWSREC_TOKEN_SECRET"] else {}
    file_keys = KeyStore(home / KEYS_FILE)
    file_keys.keys()  # a corrupt keys file fails here, at start, not on the first request

    engine, store = objects["ENGINE"], objects["STORE"]
    if engine is None:
        from recommender.serving.engine import Engine
        from recommender.store import open_store

        if store is None:
            store = open_store(app.config["NEWSREC_DB"])
        models_dir = Path(app.config["NEWSREC_MODELS"])
        try:
            models_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # serve fallback lists (the engine reports it) rather than not start at all
            log.error("model folder %s is unusable (%s); serving fallback lists until it is fixed", models_dir, exc)
        knobs = {**environ, **{k: str(config[k]) for k in (ENV_FEATURE_LOG_RATE, ENV_EXPLORE_EPSILON, ENV_LAG_SECONDS)
                               if k in config}}
        engine = Engine(store, models_dir, objects["ENGINE_CONFIG"] or engine_config_from_env(knobs))
    experiments = None
    if store is not None:
        from recommender.experiments.router import ExperimentRouter

        experiments = ExperimentRouter(store, getattr(engine, "models_dir", None) or app.config["NEWSREC_MODELS"],
                                       engine, objects["ENGINE_CONFIG"], clock=getattr(engine, "clock", None) or time.time)

    # API keys in the database every replica shares, and the host's keys.json (older installs)
    key_store = store if store is not None else getattr(engine, "store", None)
    security = Security(keys=SharedKeys(key_store, file_keys) if isinstance(key_store, Store) else file_keys,
                        tokens=ReaderTokens(load_token_secret(home, secret_env)))

    metrics = Metrics(engine.status, multiprocess=bool(app.config["PROMETHEUS_MULTIPROC_DIR"]))
    app.extensions["newsrec"] = engine
    app.extensions["newsrec.store"] = store
    app.extensions["newsrec.experiments"] = experiments
    app.extensions[SECURITY_EXTENSION] = security
    app.extensions["newsrec.metrics"] = metrics
    app.extensions[FORMAT_TIME_EXTENSION] = memo_format_time()
    app.extensions[ITEMS_JSON_EXTENSION] = {}  # id(packed items) -> (them, RawJSON): see routes.common.items_json

    init_request_logging(app, metrics)
    register_error_handlers(app)
    init_rate_limits(app)
    register_blueprints(app)
    init_web(app)  # HTML pages: the console, the Artikel Terkait widget, the reader's Personalize page

    start = app.config["START_BACKGROUND"]
    if start is None:
        start = not app.config.get("TESTING", False)
    if start:
        engine.start_background()
        if experiments is not None:
            experiments.start_background()
        log.info("engine background thread started (pid %d)", os.getpid())
    return app
