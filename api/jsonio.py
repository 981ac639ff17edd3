"""Flask's JSON provider with one reusable encoder per app (the lists' responses are JSON).

``DefaultJSONProvider`` hands its options to ``json.dumps``, which builds a new ``JSONEncoder``
for every response; a ``related`` list spent ~10 % of a worker's GIL time serializing. The
encoder here is built once from the same options, so responses are byte-for-byte the same:
compact separators, keys in insertion order, UTF-8 text (no ``\\u`` escapes, but for text with no
UTF-8 form: a lone surrogate echoed in an error message), a final newline.

:class:`RawJSON` puts text that is JSON already (a cached feed page's items, encoded once) where
an object holds it, so a page served again from the cache is not encoded again.
"""

from __future__ import annotations

import json
import secrets
import threading
from typing import Any

from flask import Flask, Response
from flask.json.provider import DefaultJSONProvider


class RawJSON:
    """Text that is JSON already (made by :meth:`ReusedEncoderJSONProvider.encode`), written as is
    where a response object holds it."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


class ReusedEncoderJSONProvider(DefaultJSONProvider):
    """``app.json`` of the API. Options are fixed when the app is built (set them on the class)."""

    ensure_ascii = False
    sort_keys = False

    def __init__(self, app: Flask):
        super().__init__(app)
        self._compact = json.JSONEncoder(ensure_ascii=self.ensure_ascii, sort_keys=self.sort_keys,
                                         separators=(",", ":"), default=self._default)
        # a RawJSON goes out as a placeholder string, replaced after encoding: NUL is always
        # escaped (\u0000) and the nonce is this app's secret, so no text of a list can forge one
        self._mark = f"\x00{secrets.token_hex(8)}-"
        self._raws = threading.local()

    @staticmethod
    def default(o: Any) -> Any:
        if isinstance(o, RawJSON):  # the indented (debug) output: parsed and written again
            return json.loads(o.text)
        return DefaultJSONProvider.default(o)

    def _default(self, o: Any) -> Any:
        if isinstance(o, RawJSON):
            raws = self._raws.__dict__.setdefault("texts", [])
            raws.append(o.text)
            return f"{self._mark}{len(raws) - 1}\x00"
        return self.default(o)

    def encode(self, obj: Any) -> str:
        """``obj`` as compact JSON (the response body without its final newline)."""
        raws = self._raws.__dict__.setdefault("texts", [])
        raws.clear()
        text = self._compact.encode(obj)
        if raws:
            escaped = self._mark.replace("\x00", "\\u0000")
            holders = [f'"{escaped}{i}\\u0000"' for i in range(len(raws))]
            texts = list(raws)
            raws.clear()
            if any(text.count(holder) != 1 for holder in holders):  # a string equal to a placeholder
                return json.dumps(obj, ensure_ascii=self.ensure_ascii, sort_keys=self.sort_keys,
                                  separators=(",", ":"), default=self.default)
            for holder, raw in zip(holders, texts):
                text = text.replace(holder, raw, 1)
        return text

    def response(self, *args: Any, **kwargs: Any) -> Response:
        if self.compact is False or (self.compact is None and self._app.debug):
            return super().response(*args, **kwargs)  # indented output for debugging: rare, not reused
        obj = self._prepare_response_obj(args, kwargs)
        try:
            body = f"{self.encode(obj)}\n".encode()  # (what the response would do with a str)
        except UnicodeEncodeError:  # a lone surrogate a message echoes back has no UTF-8 form: \u escapes
            body = (json.dumps(obj, ensure_ascii=True, sort_keys=self.sort_keys, separators=(",", ":"),
                               default=self.default) + "\n").encode()
        return self._app.response_class(body, mimetype=self.mimetype)
