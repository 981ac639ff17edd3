"""Indonesian text cleaning and tokenization for news articles.

Scraped article bodies carry page furniture ("Baca juga: <other title>", editor credits,
newsletter footers) that would make unrelated articles look alike, or leak the titles of the
very articles an editor linked. :func:`strip_furniture` removes it, :func:`tokenize` turns
clean text into lower-case word tokens without stop words. Everything here is pure ``re`` and
``str`` work so that one article is processed in well under a millisecond.
"""

from __future__ import annotations

import ast
import html
import logging
import re
from importlib import resources

__all__ = [
    "STOP_WORDS",
    "extract_editor_links",
    "normalize",
    "strip_furniture",
    "tokenize",
    "unescape_html",
]

log = logging.getLogger(__name__)

MAX_TOKEN_CHARS = 30
"""Longer "words" are glued junk (hashes, URLs without scheme); they are dropped."""

MAX_LINK_WORDS = 40
"""A "Baca juga" title is never longer than this many words."""


def _load_stop_words() -> frozenset[str]:
    text = resources.files("recommender").joinpath("resources/stopwords_id.txt").read_text("utf-8")
    words = (line.strip().lower() for line in text.splitlines())
    return frozenset(w for w in words if w and not w.startswith("#"))


STOP_WORDS: frozenset[str] = _load_stop_words()
"""Indonesian stop words (see ``recommender/resources/README.md``)."""

# --- raw-text repair -------------------------------------------------------------------------

_SCRIPT_RE = re.compile(r"<(script|style)\b.*?</\1\s*>|<!--.*?-->", re.S | re.I)
_TAG_RE = re.compile(r"</?[A-Za-z][^<>]{0,1000}>")


def _join_list_string(text: str) -> str:
    """``"['JAKARTA, ...', '...']"`` (a Python list written as a string) -> joined items."""
    s = text.strip()
    if not (s.startswith("[") and s.endswith("]")):
        return text
    try:
        value = ast.literal_eval(s)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        inner = s[1:-1].strip()
        if inner[:1] in "'\"" and inner[-1:] == inner[:1]:
            inner = inner[1:-1]
        return re.sub(r"""['"],\s*['"]""", "\n", inner)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    return text


def _squeeze_spaces(text: str) -> str:
    """Runs of whitespace -> one space, keeping one newline between paragraphs."""
    if "\n" not in text:
        return " ".join(text.split())
    lines = (" ".join(line.split()) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def unescape_html(text: str) -> str:
    """Undo double HTML escaping (``&amp;nbsp;``), drop tags and normalize spaces.

    Newlines are kept (one per paragraph); other whitespace, including no-break spaces,
    becomes a single space.
    """
    s = html.unescape(html.unescape(text)) if "&" in text else text
    if "<" in s:
        s = _SCRIPT_RE.sub(" ", s)
        s = _TAG_RE.sub(" ", s)
    if "\xad" in s or "\u200b" in s:
        s = s.replace("\xad", "").replace("\u200b", "")
    return _squeeze_spaces(s)


# --- furniture --------------------------------------------------------------------------------

# Sentence end: . ! ? followed by a space or the end, or a newline.
_TO_SENTENCE_END = r"[^\n]*?(?:[.!?](?=\s|$)|(?=\n)|$)"


_Rule = tuple[tuple[str, ...], "re.Pattern[str]", int]


def _rule(keys: str | tuple[str, ...], pattern: str, count: int = 0, flags: int = re.I) -> _Rule:
    """A pattern that only runs where one of its lower-case ``keys`` occurs.

    Each key is a prefix of every match, so the search starts at the first key: one
    ``str.find`` instead of a regex scan over text that cannot match.
    """
    return ((keys,) if isinstance(keys, str) else keys, re.compile(pattern, flags), count)


# Footers that end the article (everything after them goes), bylines, credits, datelines.
_TRAILING_RULES = (
    _rule("dapatkan update", r"Dapatkan\s+update\s+berita\b[\s\S]*\Z", 1),
    _rule("artikel ini telah tayang", r"Artikel\s+ini\s+telah\s+tayang\s+di\b[\s\S]*\Z", 1),
    _rule("copyright", r"Copyright\s*(?:©|\(c\)|\d{4})[\s\S]*\Z", 1),
    _rule("hak cipta", r"Hak\s+cipta\s*(?:©|\(c\)|dilindungi)[\s\S]*\Z", 1),  # not "hak cipta lagu"
    _rule("©", r"©\s*(?:\d{4}|[A-Z])[\s\S]*\Z", 1),
    # "Laporan Wartawan Tribunnews.com, Name TRIBUNNEWS.COM, JAKARTA -": up to the dateline.
    _rule(
        "laporan ",
        r"Laporan\s+(?:wartawan|reporter|koresponden|kontributor)\b.{0,120}?"
        r"(?=(?-i:\b(?:TRIBUN[A-Z]*|KOMPAS)\.(?:COM|CO|com)\b))",
        1,
    ),
    # Photo credits "(Tribunnews.com/Ali)".
    _rule(("(tribun", "(kompas"), r"\((?:Tribun\w*|Kompas)\.com\b[^()\n]{0,60}\)"),
    # Source brand in the dateline: "JAKARTA, KOMPAS.com -" and "TRIBUNNEWS.COM, JAKARTA -"
    # (the city stays). Brand names inside sentences ("dihubungi Kompas.com") stay too.
    _rule(("tribun", "kompas"), r"(?:TRIBUN[A-Z]*|KOMPAS)\.(?:COM|CO|com)\b\.?\s*,?\s*", 1, 0),
)
# Credits and prompts: removed up to the end of their sentence or line.
_CREDITS = ("Editor", "Penulis", "Pewarta", "Penyunting", "Sumber", "Naskah", "Foto", "Reporter")
_SENTENCE_RULES = (
    *(_rule(key.lower(), key + r"\s*:" + _TO_SENTENCE_END) for key in _CREDITS),
    _rule(
        tuple("(" + key.lower() for key in _CREDITS),
        r"\((?:" + "|".join(_CREDITS) + r")\b[^()\n]{0,150}\)",
    ),
    _rule(("artikel terkait", "berita terkait"), r"(?:Artikel|Berita)\s+Terkait\b\s*:?" + _TO_SENTENCE_END),
    _rule("berita terkini", r"Berita\s+Terkini\b\s*:?" + _TO_SENTENCE_END),
    _rule("simak ", r"Simak\s+(?:berita\s+lainnya\b|juga\s*:)" + _TO_SENTENCE_END),
    _rule(("lihat juga", "tonton juga"), r"(?:Lihat|Tonton)\s+juga\s*:" + _TO_SENTENCE_END),
    _rule(
        "ikuti ",
        r"Ikuti\s+(?:kami|berita\s+\S+(?:\s+\S+)?)\s+di\s+Google\s+News\b" + _TO_SENTENCE_END,
    ),
    _rule(
        ("dapatkan berita", "dapatkan informasi"),
        r"Dapatkan\s+(?:berita|informasi)\s+(?:terbaru|terkini|menarik)\b" + _TO_SENTENCE_END,
    ),
)


def _apply(rules: tuple[_Rule, ...], text: str, repl: str) -> str:
    low = text.lower()
    for keys, pattern, count in rules:
        hits = [i for i in map(low.find, keys) if i >= 0]
        if not hits:
            continue
        start = min(hits) if len(low) == len(text) else 0  # lower() may change lengths
        new = text[:start] + pattern.sub(repl, text[start:], count)
        if new != text:
            text, low = new, new.lower()
    return text


_LINK_MARKER_RE = re.compile(r"(?:[Bb]aca|BACA)\s*(?:[Jj]uga|JUGA)\s*:\s*|BACA\s+JUGA\b\s*:?\s*")


def _find_markers(text: str) -> list[re.Match[str]]:
    """"Baca juga:" markers, found with ``str.find`` on the lower-case text."""
    low = text.lower()
    if len(low) != len(text):
        return list(_LINK_MARKER_RE.finditer(text))
    markers = []
    i = low.find("baca")
    while i >= 0:
        m = _LINK_MARKER_RE.match(text, i)
        if m and (i == 0 or not text[i - 1].isalnum()):
            markers.append(m)
            i = m.end()
        else:
            i += 4
        i = low.find("baca", i)
    return markers


# Lower-case words that occur inside headline-case titles ("Persib Kalah di Kandang").
_TITLE_SMALL_WORDS = frozenset(
    """di dan yang untuk ke hingga dengan dari vs karena dalam akan pada soal jadi saat per atas
    setelah sang sejak sebagai atau akibat lalu ini itu lewat tapi ala bagi demi sampai sebelum
    oleh selain tentang meski pun usai buat melalui agar serta & - – — | : x feat ft de da del
    of the and to in on for at by a an is are van von bin binti""".split()
)
# "Dr." "Jl." "No." and initials do not end a sentence.
_ABBREVIATIONS = frozenset("dr drs ir jl jln no st kh hj h prof kec kab tbk pt cv rp vs".split())
_WORD_RE = re.compile(r"\S+")
_CLOSERS = "\"'”’)]»"
_OPENERS = "\"'“‘([«"


_STRIP_CHARS = _OPENERS + _CLOSERS + ".,;:!?"
_DIGIT_RE = re.compile(r"\d")


def _is_title_word(word: str) -> bool:
    core = word.strip(_STRIP_CHARS)
    if not core.islower():
        return True  # capitalised, a number, or a lone dash, pipe or quote
    return core in _TITLE_SMALL_WORDS or _DIGIT_RE.search(core) is not None


def _ends_sentence(word: str) -> bool:
    core = word.rstrip(_CLOSERS)
    if not core or core[-1] not in ".!?":
        return False
    if core[-1] == ".":
        stem = core.rstrip(".").lstrip(_OPENERS).lower()
        if len(stem) <= 1 or stem in _ABBREVIATIONS:
            return False
    return True


def _link_span(text: str, start: int, stop: int) -> int:
    """End offset of the headline-case title that starts at ``start`` (a "Baca juga" target).

    Titles are headline case; the prose after them is not. Two layouts occur: the title ends
    at a sentence end or newline (possibly split into several title-case "sentences" when a
    scraper turned commas into full stops), or it runs straight into the next sentence with no
    delimiter. In the second case the span also takes the capitalised first words of that
    sentence: harmless for stripping, and evaluation matches known titles by prefix.
    """
    end = start  # end of the last complete title-case segment
    last = start  # end of the last title-case word
    continuing = False  # past the first segment: only whole title-case segments are added
    for n_words, m in enumerate(_WORD_RE.finditer(text, start, stop), 1):
        if continuing and "\n" in text[last : m.start()]:
            return end
        word = m.group()
        if n_words > MAX_LINK_WORDS or not _is_title_word(word):
            return end if continuing else last
        last = m.end()
        if _ends_sentence(word) or text.startswith("\n", last):
            end = last
            continuing = True
    return last


def _link_spans(text: str) -> list[tuple[int, int, int]]:
    """(marker_start, title_start, title_end) for every "Baca juga:" marker."""
    markers = _find_markers(text)
    spans = []
    for i, m in enumerate(markers):
        stop = markers[i + 1].start() if i + 1 < len(markers) else len(text)
        spans.append((m.start(), m.end(), _link_span(text, m.end(), stop)))
    return spans


def _clean(text: str) -> str:
    """List-string join, HTML unescape, trailing blocks, bylines and credits removed."""
    return _apply(_TRAILING_RULES, unescape_html(_join_list_string(text)), "")


def strip_furniture(text: str) -> str:
    """Remove page furniture from a scraped article body.

    Handles bodies stored as a Python list string (``"['JAKARTA, ...', '...']"``), double
    HTML escaping and tags, inline "Baca juga: <title>" links (the title is removed with the
    marker), credits (``Editor :``, ``Penulis :``, ``Sumber :``), "Artikel Terkait",
    "Berita Terkini", newsletter and Google News prompts, copyright footers, reporter bylines
    and source brands in datelines (``JAKARTA, KOMPAS.com -`` keeps ``JAKARTA``).

    Parameters
    ----------
    text : str
        Raw body as scraped.

    Returns
    -------
    str
        Clean text; paragraphs separated by single newlines.
    """
    if not text:
        return ""
    s = _clean(text)
    if "aca" in s or "ACA" in s:
        pieces, pos = [], 0
        for marker_start, _, title_end in _link_spans(s):
            pieces.append(s[pos:marker_start])
            pos = title_end
        pieces.append(s[pos:])
        s = " ".join(pieces)
    return _squeeze_spaces(_apply(_SENTENCE_RULES, s, " "))


def extract_editor_links(body: str) -> list[str]:
    """Titles an editor linked with "Baca juga:" in a raw body, in order of appearance.

    When the source has no delimiter after the title, the returned text may end with the
    first capitalised word(s) of the next sentence; match it against known titles by prefix
    (see ``benchmarks/text_quality.py``).

    Parameters
    ----------
    body : str
        Raw article body (unescaping is done here).

    Returns
    -------
    list of str
        Linked titles, stripped of surrounding punctuation; empty strings are skipped.
    """
    if not body:
        return []
    s = _clean(body)
    links = []
    for _, title_start, title_end in _link_spans(s):
        title = s[title_start:title_end].strip().strip(" .,;:-–—")
        if title:
            links.append(title)
    return links


# --- normalization and tokens -------------------------------------------------------------

_URL_RE = re.compile(r"(?:https?://|www\.)\S+")
_EMAIL_RE = re.compile(r"[\w.+-]*@\S*")  # e-mails and @handles
_ALNUM_RE = re.compile(r"[^\W_]+")


def _words(text: str) -> list[str]:
    """Lower-case alphanumeric runs without URLs, e-mails, @handles and pure numbers."""
    s = text.lower()
    if "http" in s or "www." in s:
        s = _URL_RE.sub(" ", s)
    if "@" in s:
        s = _EMAIL_RE.sub(" ", s)
    return [w for w in _ALNUM_RE.findall(s) if not w.isdigit() and len(w) <= MAX_TOKEN_CHARS]


def normalize(text: str) -> str:
    """Lower-case, drop URLs, e-mails and numbers, punctuation to spaces, collapse spaces.

    Parameters
    ----------
    text : str

    Returns
    -------
    str
        Words separated by single spaces; ``"ps5"`` and ``"covid19"`` survive, ``"2023"``
        does not.
    """
    return " ".join(_words(text))


def tokenize(text: str, stop_words: frozenset[str] | None = STOP_WORDS) -> list[str]:
    """Normalized word tokens without stop words and one-character tokens.

    Parameters
    ----------
    text : str
        Clean text (run :func:`strip_furniture` on raw bodies first).
    stop_words : frozenset of str or None, default=STOP_WORDS
        Words to drop; ``None`` keeps every word.

    Returns
    -------
    list of str
    """
    words = _words(text)
    if stop_words:
        return [w for w in words if len(w) > 1 and w not in stop_words]
    return [w for w in words if len(w) > 1]
