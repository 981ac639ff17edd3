"""Versioned, checksummed, atomically published model bundles.

A bundle is data, never code: a folder ``<models_dir>/<version>/`` holding
``manifest.json`` plus plain ``.npy`` arrays (always read with
``allow_pickle=False``) and ``.json`` documents.  The manifest records the
SHA-256 and size of every file, so a corrupted or tampered bundle is refused
before it reaches the serving process.

Publishing is crash safe: files are written and fsynced into a hidden
``.tmp-<version>`` folder, the folder is renamed to ``<version>`` and only then
is the ``CURRENT`` pointer file replaced with ``os.replace``.  A reader
therefore sees either the old bundle or the complete new one, never a half
written one.  Which arrays and documents a bundle holds is up to the training
job; this module is generic.

Which version the service serves is decided in the database, not here (see
``recommender.models.versions``): newsrec writes bundles with ``publish=False``
(staged) and keeps ``CURRENT`` as a copy of the live version for people and for
older tools; it reads ``CURRENT`` once, to adopt it into a database that names
no live version yet.

Layout::

    models/
        CURRENT                      # contains e.g. "20261127T151300Z-1a2b3c"
        20261127T151300Z-1a2b3c/
            manifest.json
            item_vectors.npy
            vocab.json
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

__all__ = [
    "Bundle",
    "BundleError",
    "bundle_signature",
    "list_versions",
    "load_bundle",
    "new_version",
    "prune",
    "read_current",
    "set_current",
    "verify_bundle",
    "write_bundle",
]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CURRENT = "CURRENT"
_CURRENT_TMP = "CURRENT.tmp"
_TMP_PREFIX = ".tmp-"
_DEL_PREFIX = ".del-"
_CHUNK = 1 << 20  # 1 MiB reads when hashing
_STALE_TMP_SECONDS = 24 * 3600  # leftovers of crashed writes older than this are pruned
# where operators find the versions: these messages reach the CLI and the HTTP API
_VERSIONS_HINT = "'newsrec models list' (HTTP: GET /v1/admin/models)"

# fullmatch: unlike ``$``, it does not accept a trailing newline.
_VERSION_RE = re.compile(r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}")
_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_FILE_RE = re.compile(r"([a-z][a-z0-9_]{0,63})\.(npy|json)")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_RESERVED_KEYS = frozenset({"format_version", "version", "created_at", "code_version", "files"})
_RESERVED_NAMES = frozenset({"manifest"})


class BundleError(Exception):
    """A bundle cannot be written, found, verified or loaded."""


@dataclass(frozen=True)
class Bundle:
    """A loaded model bundle.

    Attributes
    ----------
    version : str
        Bundle version, e.g. ``"20261127T151300Z-1a2b3c"``.
    path : pathlib.Path
        Folder the bundle was loaded from.
    manifest : Mapping
        Parsed ``manifest.json`` (parameters, data window, checksums...).
    arrays : Mapping of str to ndarray
        Read-only ``np.memmap`` arrays when loaded with ``mmap=True``, so
        several server processes share the same pages.
    documents : Mapping of str to object
        Parsed JSON documents.
    """

    version: str
    path: Path
    manifest: Mapping[str, Any] = field(repr=False)
    arrays: Mapping[str, np.ndarray] = field(repr=False)
    documents: Mapping[str, Any] = field(repr=False)


# --------------------------------------------------------------------------- versions


def new_version(now=None):
    """Return a new version string that sorts by creation time.

    Parameters
    ----------
    now : datetime, optional
        Timezone-aware creation time; defaults to the current UTC time.

    Returns
    -------
    str
        ``YYYYMMDDTHHMMSSZ-xxxxxx``: UTC time plus 6 random hex digits, so two
        jobs started in the same second still get distinct versions.
    """
    if now is None:
        now = datetime.now(timezone.utc)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware, e.g. datetime.now(timezone.utc)")
    return now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)


def _check_version(version):
    """Refuse anything but a strict version string (no path tricks)."""
    if not isinstance(version, str) or _VERSION_RE.fullmatch(version) is None:
        raise BundleError(
            f"invalid bundle version {version!r}: expected UTC time plus 6 hex digits, "
            f"e.g. '20261127T151300Z-1a2b3c'; pick one from {_VERSIONS_HINT}"
        )
    return version


def _check_name(name, kind):
    if not isinstance(name, str) or _NAME_RE.fullmatch(name) is None:
        raise BundleError(
            f"invalid {kind} name {name!r}: use 1-64 characters of lowercase letters, "
            "digits and '_', starting with a letter (e.g. 'item_vectors')"
        )
    if name in _RESERVED_NAMES:
        raise BundleError(f"{kind} name {name!r} is reserved by the bundle format; rename it")
    return name


# --------------------------------------------------------------------------- file helpers


def _sha256_file(path):
    """SHA-256 of a file read in 1 MiB chunks into one reused buffer."""
    digest = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


def _fsync_dir(path):
    """Persist a folder's entries (new names, renames) on POSIX."""
    if os.name == "nt":  # pragma: no cover - directories cannot be fsynced on Windows
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_bytes(path, data):
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _write_array(path, array):
    with open(path, "xb") as f:
        np.save(f, array, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())


def _json_bytes(obj, what):
    try:
        text = json.dumps(obj, ensure_ascii=False, allow_nan=False, sort_keys=True, indent=1)
    except (TypeError, ValueError) as exc:
        raise BundleError(
            f"{what} is not JSON-serializable ({exc}); convert numpy values with "
            ".tolist()/int()/float(), and replace NaN/inf with None"
        ) from exc
    return text.encode("utf-8")


def _code_version():
    try:
        return metadata.version("newsrec")
    except metadata.PackageNotFoundError:
        return "unknown"


def _switch_current(models_dir, version):
    """Atomically point ``CURRENT`` at ``version`` (no symlinks)."""
    tmp = models_dir / _CURRENT_TMP
    with open(tmp, "w", encoding="ascii") as f:
        f.write(version)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, models_dir / CURRENT)
    _fsync_dir(models_dir)
    log.info("current bundle in %s is now %s", models_dir, version)


# --------------------------------------------------------------------------- writing


def write_bundle(models_dir, arrays, documents, manifest_extra=None, version=None, keep=5, publish=True,
                 protect=()):
    """Write a bundle, publish it as current and prune old versions.

    Parameters
    ----------
    models_dir : str or Path
        Folder holding all bundle versions (created if missing).
    arrays : dict of str to ndarray
        Saved as ``<name>.npy``; object dtypes are refused.
    documents : dict of str to JSON-able object
        Saved as ``<name>.json``.
    manifest_extra : dict, optional
        JSON-able facts merged into the manifest (parameters, data window,
        counts...). Keys used by the format itself are refused.
    version : str, optional
        Defaults to :func:`new_version`.
    keep : int or None, default=5
        Number of newest versions kept after publishing (the current one is
        never pruned); None disables pruning.
    publish : bool, default=True
        Point ``CURRENT`` at the new version. False writes it only (a staged
        version: something else decides when it serves).
    protect : iterable of str, default=()
        Versions never pruned besides the current one (e.g. the live one).

    Returns
    -------
    str
        The published version.
    """
    models_dir = Path(models_dir)
    now = datetime.now(timezone.utc)
    version = new_version(now) if version is None else _check_version(version)
    if keep is not None and (not isinstance(keep, int) or isinstance(keep, bool) or keep < 1):
        raise BundleError(f"keep must be a positive int or None, got {keep!r}")
    manifest_extra = dict(manifest_extra or {})
    clash = sorted(_RESERVED_KEYS.intersection(manifest_extra))
    if clash:
        raise BundleError(f"manifest_extra keys {clash} are reserved by the bundle format; rename them")

    # Validate everything before touching the disk.
    prepared = {}
    for name, value in arrays.items():
        _check_name(name, "array")
        arr = np.asarray(value)
        if arr.dtype.hasobject:
            raise BundleError(
                f"array {name!r} has dtype {arr.dtype} holding Python objects; bundles store "
                "plain data only: convert it to a numeric or fixed-width string dtype"
            )
        prepared[name] = arr
    doc_bytes = {
        _check_name(name, "document"): _json_bytes(doc, f"document {name!r}")
        for name, doc in documents.items()
    }
    _json_bytes(manifest_extra, "manifest_extra")

    models_dir.mkdir(parents=True, exist_ok=True)
    final = models_dir / version
    if final.exists():
        raise BundleError(f"bundle {final} already exists; let write_bundle choose a new version")
    tmp = models_dir / f"{_TMP_PREFIX}{version}"
    try:
        tmp.mkdir()
    except FileExistsError as exc:
        raise BundleError(
            f"{tmp} already exists: another write of this version is running or crashed; "
            "remove the folder if no job is writing it"
        ) from exc

    try:
        files = {}
        for name, arr in prepared.items():
            path = tmp / f"{name}.npy"
            _write_array(path, arr)
            files[path.name] = {"sha256": _sha256_file(path), "bytes": path.stat().st_size}
        for name, data in doc_bytes.items():
            path = tmp / f"{name}.json"
            _write_bytes(path, data)
            files[path.name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        manifest = {
            "format_version": FORMAT_VERSION,
            "version": version,
            "created_at": now.isoformat(timespec="seconds"),
            "code_version": _code_version(),
            **manifest_extra,
            "files": files,
        }
        _write_bytes(tmp / MANIFEST, _json_bytes(manifest, "manifest"))
        _fsync_dir(tmp)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(models_dir)
    total = sum(entry["bytes"] for entry in files.values())
    log.info("wrote bundle %s (%d files, %d bytes)", final, len(files), total)
    if publish:
        _switch_current(models_dir, version)
    if keep is not None:
        prune(models_dir, keep, protect=protect)
    return version


# --------------------------------------------------------------------------- reading


def read_current(models_dir):
    """Return the current version, or None if nothing was published yet."""
    path = Path(models_dir) / CURRENT
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (UnicodeDecodeError, OSError) as exc:
        raise BundleError(f"{path} is unreadable ({exc}); repair it with 'newsrec models promote VERSION'") from exc
    try:
        return _check_version(text)
    except BundleError as exc:
        raise BundleError(f"{path} is corrupted: {exc}; repair it with 'newsrec models promote VERSION'") from exc


def _read_manifest(folder, version):
    """Parse and structurally check ``manifest.json``; raise BundleError."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise BundleError(f"{path} is missing: the bundle is incomplete; rewrite it") from exc
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path} is not valid JSON ({exc}); rewrite the bundle") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise BundleError(f"{path} has no 'files' table; rewrite the bundle")
    fmt = manifest.get("format_version")
    if not isinstance(fmt, int) or fmt > FORMAT_VERSION:
        raise BundleError(
            f"{path} has format_version {fmt!r}; this code reads up to {FORMAT_VERSION}: "
            "upgrade newsrec or rewrite the bundle"
        )
    if manifest.get("version") != version:
        raise BundleError(
            f"{path} says version {manifest.get('version')!r} but lives in folder {version!r}; "
            "bundle folders must not be renamed"
        )
    return manifest


def _entry_problem(folder, root, name, entry):
    """Problem with a manifest entry that needs no hashing, or None."""
    if not isinstance(name, str) or _FILE_RE.fullmatch(name) is None:
        return (
            f"{folder}: manifest entry {name!r} is not a plain '<name>.npy' or '<name>.json' "
            "inside the bundle folder (path separators, '..' and absolute paths are refused)"
        )
    if (
        not isinstance(entry, dict)
        or not isinstance(entry.get("bytes"), int)
        or not isinstance(entry.get("sha256"), str)
        or _SHA256_RE.fullmatch(entry["sha256"]) is None
    ):
        return f"{folder / name}: manifest entry needs 'sha256' (64 hex) and 'bytes' (int)"
    path = folder / name
    if path.is_symlink():
        target = os.path.realpath(path)
        if os.path.commonpath([root, target]) != root:
            return f"{path}: symlink points outside the bundle folder (to {target}); refused"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return f"{path}: file listed in the manifest is missing; rewrite the bundle"
    if not stat.S_ISREG(st.st_mode):
        return f"{path}: not a regular file"
    if st.st_size != entry["bytes"]:
        return (
            f"{path}: size is {st.st_size} bytes, manifest says {entry['bytes']} "
            "(truncated or modified); retrain, or roll back with 'newsrec models rollback VERSION'"
        )
    return None


def _problems(folder, manifest, check_hashes):
    root = os.path.realpath(folder)
    problems = []
    for name, entry in manifest["files"].items():
        problem = _entry_problem(folder, root, name, entry)
        if problem is None and check_hashes and _sha256_file(folder / name) != entry["sha256"]:
            problem = (
                f"{folder / name}: sha256 does not match the manifest (corrupted or modified); "
                "retrain, or roll back with 'newsrec models rollback VERSION'"
            )
        if problem is not None:
            problems.append(problem)
    return problems


def verify_bundle(models_dir, version):
    """Check a bundle's files against its manifest.

    Extra files not listed in the manifest are ignored.

    Returns
    -------
    list of str
        One message per problem (missing file, size or checksum mismatch,
        unsafe file name, symlink escaping the folder); empty means OK.
    """
    _check_version(version)
    folder = Path(models_dir) / version
    if not folder.is_dir():
        return [f"{folder}: bundle folder does not exist; pick a version from {_VERSIONS_HINT}"]
    try:
        manifest = _read_manifest(folder, version)
    except BundleError as exc:
        return [str(exc)]
    return _problems(folder, manifest, check_hashes=True)


def _in_creation_order(models_dir: Path, entries: list[Path]) -> list[str]:
    """Version folders oldest first. Names sort by second only (the suffix is random), so two
    versions published within one second are ordered by when their folder was last written."""
    def key(name: str) -> tuple:
        try:
            written = (models_dir / name).stat().st_mtime_ns
        except FileNotFoundError:
            written = 0
        return name.split("-", 1)[0], written, name

    return sorted((p.name for p in entries if p.is_dir() and _VERSION_RE.fullmatch(p.name)), key=key)


def list_versions(models_dir):
    """Describe the bundles in ``models_dir``, oldest first.

    Cheap: only manifests are parsed and file names checked, nothing is
    hashed (use :func:`verify_bundle` for that).

    Returns
    -------
    list of dict
        Keys ``version``, ``created_at``, ``current``, ``n_files``,
        ``total_bytes``, ``valid`` and ``problem`` (None when valid).
    """
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    try:
        current = read_current(models_dir)
    except BundleError:
        current = None
    rows = []
    for version in _in_creation_order(models_dir, list(models_dir.iterdir())):
        folder = models_dir / version
        row = {"version": version, "created_at": None, "current": version == current,
               "n_files": 0, "total_bytes": 0, "valid": False, "problem": None}
        try:
            manifest = _read_manifest(folder, version)
        except BundleError as exc:
            row["problem"] = str(exc)
        else:
            files = manifest["files"]
            bad = [n for n, e in files.items() if not isinstance(n, str) or _FILE_RE.fullmatch(n) is None
                   or not isinstance(e, dict) or not isinstance(e.get("bytes"), int)]
            row["created_at"] = manifest.get("created_at")
            row["n_files"] = len(files)
            row["total_bytes"] = sum(e["bytes"] for n, e in files.items() if n not in bad)
            row["valid"] = not bad
            row["problem"] = f"unsafe or malformed manifest entries {bad!r}" if bad else None
        rows.append(row)
    return rows


def set_current(models_dir, version, verify=True):
    """Point ``CURRENT`` at an existing, verified version (rollback).

    With ``verify=False`` the bundle is not checked again (the caller just did).
    """
    _check_version(version)
    problems = verify_bundle(models_dir, version) if verify else []
    if problems:
        raise BundleError(f"refusing to make {version} current:\n  " + "\n  ".join(problems))
    _switch_current(Path(models_dir), version)


def bundle_signature(models_dir, version):
    """What a version's folder holds now, cheaply: ``(name, size, mtime_ns, ctime_ns)`` of each file
    (the ctime moves on a chmod too), sorted; None when the folder is missing or unreadable, or
    ``version`` is not a version string.

    Nothing is read or hashed: a server polls it every second to retry a version that failed to
    load once the folder changes (the bundle was copied in, or repaired).
    """
    if not isinstance(version, str) or _VERSION_RE.fullmatch(version) is None:
        return None
    try:
        with os.scandir(Path(models_dir) / version) as entries:
            found = []
            for entry in entries:
                st = entry.stat(follow_symlinks=True)
                found.append((entry.name, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    except OSError:
        return None
    return tuple(sorted(found))


def load_bundle(models_dir, version=None, mmap=True, verify=True):
    """Load a bundle's arrays and documents.

    Parameters
    ----------
    models_dir : str or Path
    version : str, optional
        Defaults to the current version.
    mmap : bool, default=True
        Memory-map arrays read-only so server workers share pages.
    verify : bool, default=True
        Check every SHA-256 first. With False only the cheap checks run
        (safe names, no escaping symlinks, sizes).

    Returns
    -------
    Bundle
    """
    models_dir = Path(models_dir)
    if version is None:
        version = read_current(models_dir)
        if version is None:
            raise BundleError(
                f"no current bundle in {models_dir}: run training to write one, "
                "or choose one of " + _VERSIONS_HINT
            )
    _check_version(version)
    folder = models_dir / version
    if not folder.is_dir():
        raise BundleError(f"{folder}: bundle folder does not exist; pick a version from {_VERSIONS_HINT}")
    manifest = _read_manifest(folder, version)
    problems = _problems(folder, manifest, check_hashes=verify)
    if problems:
        raise BundleError(f"refusing to load bundle {version}:\n  " + "\n  ".join(problems))

    arrays, documents = {}, {}
    for filename in manifest["files"]:
        name, ext = _FILE_RE.fullmatch(filename).groups()
        path = folder / filename
        if ext == "npy":
            try:
                arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                raise BundleError(
                    f"{path}: cannot be loaded as a plain array ({exc}); bundles never contain "
                    "pickled data: rewrite the bundle"
                ) from exc
            if not isinstance(arr, np.ndarray):  # e.g. a zip archive renamed to .npy
                if hasattr(arr, "close"):
                    arr.close()
                raise BundleError(f"{path}: not a single .npy array; rewrite the bundle")
            arrays[name] = arr
        else:
            try:
                documents[name] = json.loads(path.read_bytes())
            except ValueError as exc:
                raise BundleError(f"{path}: invalid JSON ({exc}); rewrite the bundle") from exc
    log.info("loaded bundle %s (%d arrays, %d documents)", folder, len(arrays), len(documents))
    return Bundle(
        version=version,
        path=folder,
        manifest=MappingProxyType(manifest),
        arrays=MappingProxyType(arrays),
        documents=MappingProxyType(documents),
    )


# --------------------------------------------------------------------------- pruning


def prune(models_dir, keep, protect=()):
    """Delete all but the ``keep`` newest versions; never the current one nor those in ``protect``.

    Also removes leftovers of crashed writes (``.tmp-*`` older than a day)
    and of interrupted prunes. Each version is first renamed to a hidden
    name, so readers never see a half-deleted bundle.

    Returns
    -------
    list of str
        The versions removed.
    """
    if not isinstance(keep, int) or isinstance(keep, bool) or keep < 1:
        raise BundleError(f"keep must be a positive int, got {keep!r}")
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    entries = list(models_dir.iterdir())
    versions = _in_creation_order(models_dir, entries)
    try:
        kept = {read_current(models_dir), *protect}
    except BundleError as exc:  # which version older tools serve is unknown: remove none
        log.warning("no version pruned: %s", exc)
        versions, kept = [], set()
    doomed = [v for v in versions[:-keep] if v not in kept]
    for version in doomed:
        trash = models_dir / f"{_DEL_PREFIX}{version}"
        os.rename(models_dir / version, trash)
        shutil.rmtree(trash, ignore_errors=True)
        log.info("pruned bundle %s", version)
    now = time.time()
    for path in entries:
        if path.name.startswith(_TMP_PREFIX):
            try:
                stale = now - path.stat().st_mtime > _STALE_TMP_SECONDS
            except FileNotFoundError:  # a concurrent write just published it
                continue
        else:
            stale = path.name.startswith(_DEL_PREFIX)
        if stale and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            log.info("removed leftover %s", path)
    if doomed:
        _fsync_dir(models_dir)
    return doomed
