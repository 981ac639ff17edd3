"""Streaming importers for JSON Lines, CSV and the public MIND format.

Every importer reads its file row by row, commits in batches, rejects a bad row with its
line number and reason, and can be run twice without duplicating anything (articles are
upserted; events carry or derive an idempotency key).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import gc
import json
import json.scanner
import logging
import math
import queue
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator
from urllib.parse import urlparse

import numpy as np

from recommender.domain import (ARTICLE_FIELDS, EVENT_CODES, EVENT_FIELDS, ID_PATTERN, MAX_DWELL_SECONDS,
                                MAX_FUTURE_SECONDS, PREFERENCE_FIELDS, Article, Interaction, Preferences,
                                ValidationError, parse_time)
from recommender.store import Store
from recommender.text.cleaning import strip_furniture, unescape_html

log = logging.getLogger(__name__)

BATCH_SIZE = 5_000
# events commit in larger batches: a batch writes each index page it touches once (log, then
# checkpoint), and the random-keyed indexes share pages between more events of a larger batch. At
# 10M events: 1.8x fewer bytes written per event than 5,000 a batch, bulk import ~1.4x faster. A
# batch holds the write lock ~1.5 s (~4 s on a busy machine), under the 5 s other writers wait.
EVENT_BATCH_SIZE = 50_000
MAX_RECORDED_ERRORS = 1_000
csv.field_size_limit(10_000_000)


@dataclass
class ImportReport:
    """What an import accepted and rejected; ``errors`` holds (line, reason) pairs."""

    source: str
    kind: str
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    # fields (JSON Lines) or columns (CSV) newsrec does not read -> rows that had them: skipped, not
    # refused (exports carry more than newsrec reads), but named, so a misspelt field shows
    ignored_fields: dict[str, int] = field(default_factory=dict)

    def reject(self, line: int, reason: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_RECORDED_ERRORS:
            self.errors.append((line, reason))

    def ignore(self, record: dict[str, Any], known: frozenset[str]) -> None:
        if not record.keys() <= known:
            for name in record.keys() - known:
                self.ignored_fields[name] = self.ignored_fields.get(name, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "errors": [{"line": line, "reason": reason} for line, reason in self.errors],
            "errors_truncated": self.rejected > len(self.errors),
            **({"ignored_fields": dict(sorted(self.ignored_fields.items()))} if self.ignored_fields else {}),
        }


def _progress(iterable: Iterable, desc: str, show: bool | None) -> Iterable:
    if show is None:
        show = sys.stderr.isatty()
    if not show:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, unit=" rows", mininterval=0.5, file=sys.stderr)


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    raise ValueError(f"cannot tell the format of {path}: name it .jsonl or .csv, or pass --format")


def _format(path: Path, fmt: str | None) -> str:
    """The file's format (a folder, an unknown name or format: ValueError)."""
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a file: give one .jsonl or .csv file "
                         "(only 'ingest mind' takes a folder)")
    fmt = fmt or detect_format(path)
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"unknown format {fmt!r}; use jsonl or csv")
    return fmt


# Files are decoded as UTF-8 with ``surrogateescape``: a byte that is not UTF-8 arrives as one of
# U+DC80-U+DCFF (which valid UTF-8 never decodes to), so one bad line is rejected and the rest read
_UNDECODED = re.compile("[\udc80-\udcff]")


def _not_utf8(line: str) -> str | None:
    """Why ``line`` (decoded with ``surrogateescape``) is not UTF-8 text, or None when it is."""
    if line.isascii():  # (O(1): CPython knows)
        return None
    found = _UNDECODED.search(line)
    if found is None:
        return None
    return (f"not UTF-8 text (byte 0x{ord(found.group()) - 0xDC00:02x} at column {found.start() + 1}): "
            "save the file as UTF-8")


def _open_text(path: Path, newline: str | None = None) -> IO[str]:
    """``path`` as text, line by line: UTF-8 (a BOM at the start skipped), bad bytes kept for
    :func:`_not_utf8` to find instead of failing the whole file."""
    return open(path, encoding="utf-8-sig", errors="surrogateescape", newline=newline)


def _lines_checked(lines: Iterable[str], bad: list[tuple[int, str]]) -> Iterator[str]:
    """``lines`` unchanged; the number and reason of each one that is not UTF-8 text appended to ``bad``."""
    for number, line in enumerate(lines, start=1):
        reason = _not_utf8(line)
        if reason:
            bad.append((number, reason))
        yield line


def read_rows(path: Path, fmt: str | None = None) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """``(line_number, record)`` of each row; a record that cannot be parsed comes as an error string.

    The format is checked here, before any row is read (and before an importer takes the store's
    bulk-load mode): a folder or an unknown format is a ValueError at once."""
    return _rows(path, _format(path, fmt))


def _rows(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    if fmt == "jsonl":
        scan = json.scanner.make_scanner(json.JSONDecoder())  # what json.loads runs, without its checks
        with _open_text(path) as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                if not line.isascii() and (undecoded := _not_utf8(line)):
                    yield number, undecoded
                    continue
                text = line.rstrip(" \t\r\n")  # JSON's whitespace only
                try:  # a line that is one JSON value from its first character to its last
                    record, end = scan(text, 0)
                    if end == len(text):
                        yield number, record if type(record) is dict else "each line must be a JSON object"
                        continue
                except (StopIteration, json.JSONDecodeError):
                    pass
                try:  # anything else as before: json.loads, with its message
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield number, f"not valid JSON: {exc.msg} at column {exc.colno}"
                    continue
                yield number, record if isinstance(record, dict) else "each line must be a JSON object"
    elif fmt == "csv":
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        undecoded: list[tuple[int, str]] = []  # lines of the row just read that are not UTF-8
        with _open_text(path, newline="") as fh:
            reader = csv.reader(_lines_checked(fh, undecoded), delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                return
            if undecoded:
                raise ValueError(f"{path}: the header row is {undecoded[0][1]}")
            header = [h.strip() for h in header]
            for row in reader:
                number = reader.line_num
                if undecoded:  # (a quoted cell can span lines: the line that holds the byte)
                    yield undecoded[0]
                    undecoded.clear()
                    continue
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    yield number, f"expected {len(header)} columns, found {len(row)}"
                    continue
                yield number, {k: (v if v != "" else None) for k, v in zip(header, row)}


def _import(
    rows: Iterable[tuple[int, dict[str, Any] | str]],
    parse: Callable[[dict[str, Any]], Any],
    write: Callable[[list[Any]], tuple[int, int]],
    report: ImportReport,
    show_progress: bool | None,
    known: frozenset[str],
    batch_size: int = BATCH_SIZE,
) -> ImportReport:
    batch: list[Any] = []
    for number, record in _progress(rows, report.kind, show_progress):
        if isinstance(record, str):
            report.reject(number, record)
            continue
        report.ignore(record, known)
        try:
            batch.append(parse(record))
        except ValidationError as exc:
            report.reject(number, str(exc))
            continue
        if len(batch) >= batch_size:
            _flush(batch, write, report)
            batch = []
    if batch:
        _flush(batch, write, report)
    log.info("%s import of %s: %d accepted, %d duplicates, %d rejected", report.kind, report.source,
             report.accepted, report.duplicates, report.rejected)
    return report


def _flush(batch: list[Any], write: Callable[[list[Any]], tuple[int, int]], report: ImportReport) -> None:
    inserted, duplicates = write(batch)
    report.accepted += inserted
    report.duplicates += duplicates


def _write_articles(store: Store) -> Callable[[list[Article]], tuple[int, int]]:
    return lambda batch: (store.upsert_articles(batch), 0)


def _write_preferences(store: Store) -> Callable[[list[Preferences]], tuple[int, int]]:
    def write(batch: list[Preferences]) -> tuple[int, int]:
        for prefs in batch:
            store.set_preferences(prefs)
        return len(batch), 0

    return write


def import_articles(store: Store, path: str | Path, fmt: str | None = None, show_progress: bool | None = None) -> ImportReport:
    path = Path(path)
    return _import(read_rows(path, fmt), Article.from_dict, _write_articles(store),
                   ImportReport(str(path), "articles"), show_progress, ARTICLE_FIELDS)


def import_events(store: Store, path: str | Path, fmt: str | None = None, show_progress: bool | None = None) -> ImportReport:
    """Events in batches of :data:`EVENT_BATCH_SIZE`, each committed before it counts as accepted.

    The file is read and validated in a second thread while the previous batch is written (the
    database's work, and psycopg's and sqlite3's waits, release the GIL), one batch ahead at most;
    that thread also does the store's own work that needs no database (``Store.prepare_import``).
    """
    path = Path(path)
    report = ImportReport(str(path), "events")
    rows = read_rows(path, fmt)
    with _collector_paused(), _quick_handoffs(), store.bulk_load():
        for batch in _read_ahead(map(store.prepare_import, _event_batches(rows, report, show_progress))):
            _flush(batch, functools.partial(_trusted, store), report)
    log.info("%s import of %s: %d accepted, %d duplicates, %d rejected", report.kind, report.source,
             report.accepted, report.duplicates, report.rejected)
    return report


def _event_batches(rows: Iterable[tuple[int, dict[str, Any] | str]], report: ImportReport,
                   show_progress: bool | None) -> Iterator[list[Interaction]]:
    """Events in lists of at most :data:`EVENT_BATCH_SIZE`, validated a batch at a time."""
    pending: list[tuple[int, dict[str, Any] | str]] = []  # unreadable lines too: errors stay in line order
    readable = 0
    for number, record in _progress(rows, report.kind, show_progress):
        pending.append((number, record))
        if not isinstance(record, str):
            readable += 1
            if readable >= EVENT_BATCH_SIZE:
                yield _events(pending, report)
                pending, readable = [], 0
    if pending:
        yield _events(pending, report)


_ID_LINES = re.compile(f"(?:{ID_PATTERN.pattern}\n)*")  # check_id's rule, one id per line
_new = object.__new__


def _ids_ok(values: list[Any], optional: bool) -> list[bool]:
    """Which values are valid ids (``optional``: or None/"") by the rule of ``check_id``; one regex
    over the joined column when every value is a string, as almost always."""
    if all(type(v) is str for v in values):
        joined = "\n".join(values) + "\n"
        if joined.count("\n") == len(values) and _ID_LINES.fullmatch(joined):  # (no id holds a newline)
            return [True] * len(values)
    return [(optional and (v is None or v == "")) or (type(v) is str and ID_PATTERN.fullmatch(v) is not None)
            for v in values]


def _events(pending: list[tuple[int, dict[str, Any] | str]], report: ImportReport) -> list[Interaction]:
    """``Interaction.from_dict`` of each record, column by column for the common shape.

    Why: at 50k events/s the importer has ~20 us per event for everything, and ``from_dict`` alone
    costs ~10. Here the ids are checked by one regex per column, the times by :func:`iso_times`
    (numpy), and an event of the plain shape (string ids and time, a number or nothing as dwell, no
    position or history flag) is filled without the frozen dataclass's per-field
    ``object.__setattr__``. Any other record goes through ``from_dict``, which accepts it or rejects
    it with its own message; a test checks that both give the same events and errors.
    """
    records = [r for _, r in pending]
    if not all(type(r) is dict for r in records):
        records = [r if type(r) is dict else {} for r in records]  # (read errors: rejected below)
    users = [r.get("user_id") for r in records]
    articles = [r.get("article_id") for r in records]
    kinds = [r.get("event") for r in records]
    times = [r.get("ts") for r in records]
    event_ids = [r.get("event_id") for r in records]
    list_ids = [r.get("list_id") for r in records]
    dwells = [r.get("dwell_seconds") for r in records]
    plain = [r.get("position") is None and r.get("history") is None for r in records]
    for record in records:
        report.ignore(record, EVENT_FIELDS)
    ok = [a and b and c and d and e and p for a, b, c, d, e, p in zip(
        _ids_ok(users, False), _ids_ok(articles, False), _ids_ok(event_ids, True), _ids_ok(list_ids, True),
        [type(k) is str and k in EVENT_CODES for k in kinds], plain)]
    texts = [t if type(t) is str else "" for t in times]
    when = iso_times(texts).tolist()
    latest = time.time() + MAX_FUTURE_SECONDS
    out: list[Interaction] = []
    append = out.append
    for i, (number, record) in enumerate(pending):
        if isinstance(record, str):
            report.reject(number, record)
            continue
        ts, dwell = when[i], dwells[i]
        if dwell is not None:
            if type(dwell) is int:
                dwell = float(dwell)
            if type(dwell) is not float or not 0 <= dwell <= MAX_DWELL_SECONDS:  # (NaN fails both)
                ts = math.nan
        if ok[i] and ts <= latest:  # (NaN: a time iso_times leaves to parse_time, or a dwell to check)
            event = _new(Interaction)
            event.__dict__.update(user_id=users[i], article_id=articles[i], event=kinds[i], ts=ts,
                                  dwell_seconds=dwell, event_id=event_ids[i] or None, list_id=list_ids[i] or None,
                                  position=None, history=False)
            append(event)
            continue
        try:
            append(Interaction.from_dict(record))
        except ValidationError as exc:
            report.reject(number, str(exc))
    return out


_DAYS_BEFORE_MONTH = np.array([0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334])
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def iso_times(texts: list[str]) -> np.ndarray:
    """Epoch seconds of times written ``YYYY-MM-DDTHH:MM:SS+HH:MM`` (what ``format_time`` and most
    exports write), parsed as one numpy array; NaN for every other form (``parse_time`` reads those).

    Same result as ``parse_time`` where not NaN: fields in range (day within its month, second
    below 60, offset below 24 h), years 1971-2998 only (the range check at the ends stays there).
    """
    n = len(texts)
    out = np.full(n, np.nan)
    if not n:
        return out
    chars = np.array(texts, dtype="U25")
    full = np.fromiter((len(t) == 25 for t in texts), dtype=bool, count=n)
    codes = chars.view(np.uint32).reshape(n, 25).astype(np.int64) - 48  # '0' -> 0
    digit_cols = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 23, 24]
    digits = codes[:, digit_cols]
    good = full & ((digits >= 0) & (digits <= 9)).all(axis=1)
    for col, char in ((4, "-"), (7, "-"), (10, "T"), (13, ":"), (16, ":"), (22, ":")):
        good &= codes[:, col] == ord(char) - 48
    sign = codes[:, 19] + 48
    good &= (sign == ord("+")) | (sign == ord("-"))

    def number(a: int, b: int) -> np.ndarray:
        value = np.zeros(n, dtype=np.int64)
        for col in range(a, b):
            value = value * 10 + codes[:, col]
        return value

    year, month, day = number(0, 4), number(5, 7), number(8, 10)
    hour, minute, second = number(11, 13), number(14, 16), number(17, 19)
    off = (number(20, 22) * 60 + number(23, 25)) * np.where(sign == ord("+"), 1, -1)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    safe_month = np.clip(month, 1, 12)
    days_in = _DAYS_IN_MONTH[safe_month] + ((safe_month == 2) & leap)
    good &= (year >= 1971) & (year <= 2998) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= days_in)
    good &= (hour < 24) & (minute < 60) & (second < 60) & (number(20, 22) < 24) & (number(23, 25) < 60)
    y = year - 1
    days = y * 365 + y // 4 - y // 100 + y // 400 - 719162 + _DAYS_BEFORE_MONTH[safe_month] + \
        ((safe_month > 2) & leap) + day - 1  # days since 1970-01-01 (719162: days before it from year 1)
    seconds = days * 86400 + hour * 3600 + minute * 60 + second - off * 60
    out[good] = seconds[good]
    return out


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the duration (back as it was afterwards).

    Why: an import allocates millions of dicts, strings and events, none in a cycle, and every
    700 allocations the collector walks the young ones, every so often all of them: ~3 us of the
    parser's ~10 us per event. Memory is still freed by reference counting as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# GIL hand-off interval during an import (Python's default is 5 ms)
IMPORT_SWITCH_INTERVAL = 0.001


@contextlib.contextmanager
def _quick_handoffs() -> Iterator[None]:
    """The interpreter's thread switch interval at :data:`IMPORT_SWITCH_INTERVAL` for the
    duration (back as it was afterwards).

    Why: the writer thread waits for the database ~15 times per batch while the reader thread
    parses; each time the answer comes, it waits for the reader to give up the GIL, up to the
    interval. 2M events into PostgreSQL, 4 alternating pairs: 44.5k -> 46.7k events/s (median),
    ahead in every pair, for ~8 % more CPU.
    """
    was = sys.getswitchinterval()
    sys.setswitchinterval(min(was, IMPORT_SWITCH_INTERVAL))
    try:
        yield
    finally:
        sys.setswitchinterval(was)


_DONE = object()


def _read_ahead(batches: Iterator[list[Any]]) -> Iterator[list[Any]]:
    """``batches`` produced in a thread of their own, one ahead of the consumer. An error while
    reading is raised in the consumer; when the consumer stops (an error while writing), the
    reader stops at its next batch and nothing more is read."""
    ready: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def hand_over(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.2)  # wakes to see ``stop`` when the consumer has gone
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not hand_over(batch):
                    return
            hand_over(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            hand_over(exc)

    reader = threading.Thread(target=produce, name="newsrec-import-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()


def _trusted(store: Store, batch: list[Interaction]) -> tuple[int, int]:
    """A bulk import is the operator's own data: no per-event check of one count per reader and hour."""
    return store.add_events(batch, source="import")


def _preferences_row(record: dict[str, Any]) -> Preferences:
    """A row replaces the reader's follows, as ``PUT .../preferences`` does: one naming neither
    field (another kind of file, an events export say) would clear them, so it is refused."""
    if "categories" not in record and "regions" not in record:
        raise ValidationError("names neither categories nor regions: a preferences row replaces the reader's "
                              "follows (give an empty value to clear them); is this a preferences file?")
    return Preferences.from_dict(record)


def import_preferences(store: Store, path: str | Path, fmt: str | None = None, show_progress: bool | None = None) -> ImportReport:
    path = Path(path)
    return _import(read_rows(path, fmt), _preferences_row, _write_preferences(store),
                   ImportReport(str(path), "preferences"), show_progress, PREFERENCE_FIELDS)


# -- MIND ------------------------------------------------------------------------------------
MIND_TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
HISTORY_GAP_SECONDS = 3600.0


def _mind_time(text: str) -> float:
    return datetime.strptime(text.strip(), MIND_TIME_FORMAT).replace(tzinfo=timezone.utc).timestamp()


def _mind_lines(path: Path, n_columns: int) -> Iterator[tuple[int, list[str] | str]]:
    with _open_text(path, newline="") as fh:
        for number, line in enumerate(fh, start=1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            undecoded = _not_utf8(line)
            if undecoded:
                yield number, undecoded
                continue
            cols = line.split("\t")
            if len(cols) != n_columns:
                yield number, f"expected {n_columns} tab-separated columns, found {len(cols)}"
            else:
                yield number, cols


def _mind_scan(behaviors: Path) -> tuple[float | None, dict[str, float], set[str]]:
    """First pass: the log's first time, each news id's first impression time and the news ids of
    the click histories."""
    start: float | None = None
    first_seen: dict[str, float] = {}
    clicked_before: set[str] = set()
    for _, cols in _mind_lines(behaviors, 5):
        if isinstance(cols, str):
            continue
        try:
            ts = _mind_time(cols[2])
        except ValueError:
            continue
        start = ts if start is None else min(start, ts)
        clicked_before.update(cols[3].split())
        for entry in cols[4].split():
            news_id = entry.rsplit("-", 1)[0]
            if ts < first_seen.get(news_id, float("inf")):
                first_seen[news_id] = ts
    return start, first_seen, clicked_before


def _mind_events(cols: list[str], history_time: float) -> list[Interaction]:
    impression_id, user_id, time_text, history, impressions = cols
    ts = _mind_time(time_text)
    list_id = f"mind-{impression_id}"
    events: list[Interaction] = []
    past = history.split()
    for i, news_id in enumerate(past):
        events.append(Interaction.from_dict({
            "user_id": user_id, "article_id": news_id, "event": "click",
            "ts": history_time - (len(past) - i), "event_id": f"mind-h:{user_id}:{news_id}", "history": True,
        }))
    for position, entry in enumerate(impressions.split()):
        news_id, sep, label = entry.rpartition("-")
        if not sep or label not in ("0", "1"):
            raise ValidationError(f"impression entry {entry!r} must look like N123-1 or N123-0")
        common = {"user_id": user_id, "article_id": news_id, "ts": ts, "list_id": list_id, "position": position}
        events.append(Interaction.from_dict({**common, "event": "impression",
                                             "event_id": f"mind:{impression_id}:{position}"}))
        if label == "1":
            events.append(Interaction.from_dict({**common, "event": "click",
                                                 "event_id": f"mind:{impression_id}:{position}:c"}))
    return events


def import_mind(store: Store, folder: str | Path, show_progress: bool | None = None,
                stub_missing: bool = False) -> list[ImportReport]:
    """Import MIND's ``news.tsv`` and ``behaviors.tsv``.

    MIND gives no publication time, so an article is dated at its first impression (or the
    log's start). History clicks have no time at all: they are dated just before the log
    starts and flagged ``history`` so that a time split never puts them in the test period.
    With ``stub_missing`` (what ``newsrec ingest mind`` does), news ids that appear in impressions
    or click histories but have no ``news.tsv`` row (most of them in a sampled MIND) get a
    placeholder article with no text at all (category ``unknown``; an id is not text: as a title
    the embedder would learn one word per article), dated at their first impression or an hour
    before the log: without them their events are skipped as events of unknown articles, and
    every candidate without text scores alike (AUC 0.5).
    """
    folder = Path(folder)
    news, behaviors = folder / "news.tsv", folder / "behaviors.tsv"
    for path in (news, behaviors):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: a MIND folder holds news.tsv and behaviors.tsv")
    start, first_seen, clicked_before = _mind_scan(behaviors)
    log_start = start if start is not None else 0.0
    history_time = log_start - HISTORY_GAP_SECONDS

    def parse_news(cols: list[str]) -> Article:
        news_id, category, subcategory, title, abstract, url = cols[:6]
        return Article.from_dict({
            "article_id": news_id, "title": title, "body": abstract, "category": category,
            "tags": [subcategory] if subcategory else [], "url": url or None,
            "published_at": first_seen.get(news_id, log_start), "language": "en",
        })

    def rows_news() -> Iterator[tuple[int, dict[str, Any] | str]]:
        for number, cols in _mind_lines(news, 8):
            yield number, cols if isinstance(cols, str) else {"cols": cols}

    news_report = _import(rows_news(), lambda r: parse_news(r["cols"]), _write_articles(store),
                          ImportReport(str(news), "mind news"), show_progress, frozenset({"cols"}))
    if stub_missing:
        dated = {**dict.fromkeys(sorted(clicked_before), log_start - 3600.0), **first_seen}  # (sorted: a set's
        # order changes with the process's string hashing, and the articles' keys follow this order)
        have = set(store.get_articles(list(dated), include_deleted=True))
        stubs = [Article(article_id=i, title="", body="", category="unknown", published_at=t, language="en")
                 for i, t in dated.items() if i not in have]
        for start in range(0, len(stubs), BATCH_SIZE):
            store.upsert_articles(stubs[start:start + BATCH_SIZE])
        log.info("added %d placeholder articles for news ids without text", len(stubs))

    report = ImportReport(str(behaviors), "mind behaviors")
    batch: list[Interaction] = []
    with store.bulk_load():
        for number, cols in _progress(_mind_lines(behaviors, 5), "mind behaviors", show_progress):
            if isinstance(cols, str):
                report.reject(number, cols)
                continue
            try:
                batch.extend(_mind_events(cols, history_time))
            except ValidationError as exc:
                report.reject(number, str(exc))
            except ValueError:
                report.reject(number, f"time {cols[2]!r} is not like 11/13/2019 8:36:57 AM")
            if len(batch) >= EVENT_BATCH_SIZE:
                _flush(batch, functools.partial(_trusted, store), report)
                batch = []
        if batch:
            _flush(batch, functools.partial(_trusted, store), report)
    return [news_report, report]


# -- a portal's scraped articles (the Kompas.com + Tribunnews.com set) -------------------------
SCRAPED_COLUMNS = ("URL", "PublishDate", "Article_ID", "Title", "Body_Text")


def portal_section(url: str) -> str:
    """A scraped article's section from its URL, which is all the set says of it: Kompas's
    subdomain (``money``, ``bola``), Tribunnews's first path segment (``superskor``, ``seleb``)."""
    parsed = urlparse(url)
    if parsed.netloc.endswith("tribunnews.com"):
        parts = [p for p in parsed.path.split("/") if p]
        return parts[0] if parts else "tribunnews"
    return parsed.netloc.split(".")[0] or "portal"


def scraped_rows(path: str | Path) -> tuple[list[tuple[int, dict[str, str]]], float | None]:
    """The rows of a scraped-articles CSV (:data:`SCRAPED_COLUMNS`) with the line each ends on,
    each URL once (its first row), and the local (WIB) midnight of its first day (None when no
    row has a time)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not a file: give the CSV of scraped articles "
                                f"(columns {', '.join(SCRAPED_COLUMNS)})")
    rows, seen = [], set()
    with _open_text(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in SCRAPED_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path} lacks the column(s) {', '.join(missing)} of a scraped-articles CSV "
                             f"({', '.join(SCRAPED_COLUMNS)}); for newsrec's own columns use 'ingest articles'")
        for row in reader:
            if row["URL"] not in seen:
                seen.add(row["URL"])
                rows.append((reader.line_num, row))
    times = [scraped_time(row) for _, row in rows]
    known = [t for t in times if t is not None]
    if not known:
        return rows, None
    first = min(known)
    return rows, first - (first + 7 * 3600) % 86400


def scraped_time(row: dict[str, str]) -> float | None:
    """A scraped row's ``PublishDate`` (WIB), None when it has none ("[]" in one row of the set)."""
    try:
        return parse_time(row["PublishDate"], "PublishDate")
    except ValidationError:
        return None


def scraped_article(row: dict[str, str], undated: float) -> Article:
    """One scraped row as an article: the id prefixed by its portal (``kompas-``, ``tribun-``),
    the title unescaped, the body without page furniture (credits, prompts, "Baca juga" links),
    the section from the URL, dated at ``undated`` when its time is missing ("[]" in one row)."""
    host = urlparse(row["URL"]).netloc
    published = scraped_time(row)
    return Article.from_dict({
        "article_id": f"{'kompas' if 'kompas' in host else 'tribun'}-{row['Article_ID']}",
        "title": unescape_html(row["Title"]), "body": strip_furniture(row["Body_Text"]),
        "category": portal_section(row["URL"]), "published_at": published if published is not None else undated,
        "url": row["URL"], "language": "id"})


def import_scraped(store: Store, path: str | Path, show_progress: bool | None = None) -> ImportReport:
    """Articles scraped from a portal, as CSV with :data:`SCRAPED_COLUMNS` (the Kompas.com +
    Tribunnews.com set in ``../shared/data``; ``benchmarks/quality.py`` reads it the same way): a
    text-only catalog, whose related lists a model trained on it serves (no events: no feeds of
    its own but cold-start and popular ones)."""
    rows, undated = scraped_rows(path)
    return _import(rows, lambda row: scraped_article(row, undated if undated is not None else 0.0),
                   _write_articles(store), ImportReport(str(path), "articles"), show_progress,
                   frozenset(SCRAPED_COLUMNS))


IMPORTERS: dict[str, Callable[..., ImportReport]] = {
    "articles": import_articles,
    "events": import_events,
    "preferences": import_preferences,
}
