"""Flask's JSON provider with one reusable encoder per app (the lists' responses are JSON).

``DefaultJSONProvider`` hands its options to ``json.dumps``, which builds a new ``JSONEncoder``
for every response; a ``related`` list spent ~10 % of a worker's GIL time serializing. The
encoder here is built once from the same options, so responses are byte-for-byte the same:
compact separators, keys in insertion order, UTF-8 text (no ``\\u`` escapes), a final newline.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, Response
from flask.json.provider import DefaultJSONProvider


class ReusedEncoderJSONProvider(DefaultJSONProvider):
    """``app.json`` of the API. Options are fixed when the app is built (set them on the class)."""

    ensure_ascii = False
    sort_keys = False

    def __init__(self, app: Flask):
        super().__init__(app)
        self._compact = json.JSONEncoder(ensure_ascii=self.ensure_ascii, sort_keys=self.sort_keys,
                                         separators=(",", ":"), default=self.default)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        if self.compact is False or (self.compact is None and self._app.debug):
            return super().response(*args, **kwargs)  # indented output for debugging: rare, not reused
        obj = self._prepare_response_obj(args, kwargs)
        return self._app.response_class(f"{self._compact.encode(obj)}\n", mimetype=self.mimetype)
