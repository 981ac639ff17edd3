"""The WSGI entry point: ``gunicorn -c api/gunicorn_conf.py api.wsgi:app``.

The only module-level app. With ``preload_app = False`` each gunicorn worker imports this
after the fork, so each builds its own engine, SQLite connections and background thread.
"""

from __future__ import annotations

from . import create_app

app = create_app()
