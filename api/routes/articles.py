"""Publishing and taking down articles (the CMS side)."""

from __future__ import annotations

from flask import Blueprint

from recommender.domain import Article

from ..auth import api_view
from ..errors import ApiError
from .common import batch_records, engine, json_body, parse_all, path_id

bp = Blueprint("articles", __name__)

MAX_ARTICLES = 500


@bp.post("/v1/articles")
@api_view("cms")
def publish():
    """Insert or update 1..500 articles, all-or-nothing; they can be recommended within seconds.
    A taken-down article published again is restored."""
    records = batch_records(json_body(), "articles", MAX_ARTICLES, "article")
    articles = parse_all(records, lambda r: Article.from_dict(r, strict=True), "article")
    return {"accepted": engine().publish_articles(articles)}


@bp.delete("/v1/articles/<article_id>")
@api_view("editor")
def takedown(article_id: str):
    """Stop recommending an article now (its body is erased from the store); publishing it again
    restores it."""
    article_id = path_id(article_id, "article_id")
    if not engine().takedown(article_id):
        raise ApiError(404, "not_found", f"no article {article_id!r}; check the id")
    return {"article_id": article_id, "taken_down": True}


@bp.post("/v1/admin/articles/<article_id>/restore")
@api_view("editor")
def restore(article_id: str):
    """Undo a takedown: the only way back (publishing or re-importing a taken-down article keeps it
    down). The text erased at the takedown is not brought back: publish the article again for that."""
    article_id = path_id(article_id, "article_id")
    if not engine().restore(article_id):
        raise ApiError(404, "not_found", f"no article {article_id!r}; check the id")
    return {"article_id": article_id, "restored": True}
