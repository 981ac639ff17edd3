"""The API's blueprints, registered by :func:`api.create_app`."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    from . import admin, articles, editorial, events, experiments, health, lists, users

    for module in (lists, events, articles, users, admin, editorial, health, experiments):
        app.register_blueprint(module.bp)
