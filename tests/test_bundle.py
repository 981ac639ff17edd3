"""Tests for recommender.bundle: round trips, atomic publishing, tamper detection."""

import hashlib
import json
import os
import re
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from recommender.models import bundle
from recommender.models.bundle import (
    BundleError,
    list_versions,
    load_bundle,
    new_version,
    prune,
    read_current,
    set_current,
    verify_bundle,
    write_bundle,
)

DOCUMENTS = {
    "vocab": {"article_ids": ["kompas-001", "detik-042", "tempo-777"], "categories": ["Ekonomi", "Olahraga"]},
    "params": {"factors": 8, "regularization": 0.01, "judul": "Harga beras naik – pasar Senen"},
}
EXTRA = {"params": {"factors": 8}, "data_window": ["2026-11-01", "2026-11-27"], "n_users": 3}
T0 = datetime(2026, 11, 27, 15, 13, 0, tzinfo=timezone.utc)


@pytest.fixture
def rng():
    return np.random.default_rng(20261127)


@pytest.fixture
def arrays(rng):
    return {
        "item_vectors": rng.standard_normal((7, 4)).astype(np.float32),
        "item_ids": np.arange(7, dtype=np.int64),
        "fortran": np.asfortranarray(rng.integers(0, 100, size=(3, 5)).astype(np.int16)),
        "mask": np.array([True, False, True]),
        "titles": np.array(["Berita", "Bola"]),
        "empty": np.zeros((0, 4), dtype=np.float64),
        "scalar": np.array(2.5),
    }


def _versions(n):
    """n distinct versions, one minute apart (so they sort in creation order)."""
    return [new_version(T0 + timedelta(minutes=i)) for i in range(n)]


def _write(models, arrays, version=None, keep=5):
    return write_bundle(models, arrays, DOCUMENTS, EXTRA, version=version, keep=keep)


def _rewrite_manifest(folder, mutate):
    path = Path(folder) / "manifest.json"
    manifest = json.loads(path.read_text())
    mutate(manifest)
    path.write_text(json.dumps(manifest))


def _entry_for(path):
    data = Path(path).read_bytes()
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


# --------------------------------------------------------------------------- versions


def test_new_version_format_and_order():
    a = new_version(T0)
    b = new_version(datetime(2026, 11, 27, 22, 14, 0, tzinfo=timezone(timedelta(hours=7))))  # WIB
    assert a.startswith("20261127T151300Z-")
    assert b.startswith("20261127T151400Z-")  # converted to UTC
    assert re.fullmatch(r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}", new_version())
    assert sorted([b, a]) == [a, b]
    assert len({new_version(T0) for _ in range(50)}) > 1  # random suffix


def test_new_version_refuses_naive_time():
    with pytest.raises(ValueError, match="timezone-aware"):
        new_version(datetime(2026, 11, 27, 15, 13))


@pytest.mark.parametrize(
    "bad", ["../x", "..", "/etc", "20261127T151300Z-1a2b3c/../../x", "20261127T151300Z-1A2B3C",
            "20261127T151300Z-1a2b3c\n", "", 20261127]
)
def test_version_strings_are_validated_everywhere(tmp_path, arrays, bad):
    models = tmp_path / "models"
    _write(models, arrays)
    for call in (lambda: load_bundle(models, bad), lambda: set_current(models, bad),
                 lambda: verify_bundle(models, bad), lambda: _write(models, arrays, version=bad)):
        with pytest.raises(BundleError, match="invalid bundle version"):
            call()
    assert len(list_versions(models)) == 1
    assert not (tmp_path / "x").exists()


def test_corrupt_current_pointer_is_refused(tmp_path, arrays):
    models = tmp_path / "models"
    _write(models, arrays)
    (models / "CURRENT").write_text("../../etc")
    with pytest.raises(BundleError, match="CURRENT is corrupted"):
        read_current(models)
    with pytest.raises(BundleError, match="newsrec models promote"):
        load_bundle(models)


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("mmap", [True, False])
def test_round_trip_is_exact(tmp_path, arrays, mmap):
    models = tmp_path / "models"
    version = _write(models, arrays)
    loaded = load_bundle(models, mmap=mmap)
    assert loaded.version == version
    assert loaded.path == models / version
    assert set(loaded.arrays) == set(arrays)
    for name, expected in arrays.items():
        got = loaded.arrays[name]
        assert got.dtype == expected.dtype, name
        assert got.shape == expected.shape, name
        np.testing.assert_array_equal(got, expected)
    assert dict(loaded.documents) == DOCUMENTS
    assert loaded.documents["params"]["judul"] == "Harga beras naik – pasar Senen"


def test_manifest_records_metadata_and_checksums(tmp_path, arrays):
    models = tmp_path / "models"
    version = new_version(T0)
    _write(models, arrays, version=version)
    manifest = load_bundle(models).manifest
    assert manifest["version"] == version
    created = datetime.fromisoformat(manifest["created_at"])
    assert created.utcoffset() == timedelta(0)
    assert isinstance(manifest["code_version"], str) and manifest["code_version"]
    for key, value in EXTRA.items():
        assert manifest[key] == value
    expected_files = {f"{n}.npy" for n in arrays} | {f"{n}.json" for n in DOCUMENTS}
    assert set(manifest["files"]) == expected_files
    for filename, entry in manifest["files"].items():
        assert entry == _entry_for(models / version / filename)
    # The pointer is a plain file, not a symlink, and no temporary files remain.
    assert (models / "CURRENT").read_text() == version
    assert not (models / "CURRENT").is_symlink()
    assert sorted(p.name for p in models.iterdir()) == sorted(["CURRENT", version])


def test_mmap_arrays_are_read_only_memmaps(tmp_path, arrays):
    models = tmp_path / "models"
    _write(models, arrays)
    vectors = load_bundle(models, mmap=True).arrays["item_vectors"]
    assert isinstance(vectors, np.memmap)
    assert not vectors.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        vectors[0, 0] = 1.0
    in_memory = load_bundle(models, mmap=False).arrays["item_vectors"]
    assert not isinstance(in_memory, np.memmap)
    with pytest.raises(TypeError):
        load_bundle(models).arrays["new"] = in_memory  # mappings are read-only too


@settings(max_examples=25, deadline=None)
@given(hnp.arrays(
    dtype=st.sampled_from([np.float32, np.float64, np.int32, np.int64, np.uint8, np.bool_]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
))
def test_round_trip_property(array):
    with tempfile.TemporaryDirectory() as tmp:
        write_bundle(tmp, {"a": array}, {}, {})
        got = load_bundle(tmp).arrays["a"]
        assert got.dtype == array.dtype and got.shape == array.shape
        np.testing.assert_array_equal(got, array)  # NaNs compare equal here


# --------------------------------------------------------------------------- input validation


@pytest.mark.parametrize("name", ["Item", "1x", "a/b", "../a", "a.b", "", "x" * 65, "manifest"])
def test_invalid_names_are_refused(tmp_path, name):
    models = tmp_path / "models"
    with pytest.raises(BundleError, match="name"):
        write_bundle(models, {name: np.zeros(2)}, {}, {})
    with pytest.raises(BundleError, match="name"):
        write_bundle(models, {}, {name: {}}, {})
    assert list_versions(models) == []


def test_object_arrays_and_unserializable_documents_are_refused(tmp_path):
    models = tmp_path / "models"
    with pytest.raises(BundleError, match="Python objects"):
        write_bundle(models, {"ids": np.array(["a", 1], dtype=object)}, {}, {})
    with pytest.raises(BundleError, match="'vocab' is not JSON"):
        write_bundle(models, {}, {"vocab": {"n": np.int64(3)}}, {})
    with pytest.raises(BundleError, match="NaN"):
        write_bundle(models, {}, {"stats": {"ctr": float("nan")}}, {})
    with pytest.raises(BundleError, match="reserved"):
        write_bundle(models, {}, {}, {"files": {}})
    assert list_versions(models) == []
    assert read_current(models) is None


# --------------------------------------------------------------------------- current, list, rollback, prune


def test_current_pointer_switches_and_rollback(tmp_path, arrays):
    models = tmp_path / "models"
    assert read_current(models) is None
    assert list_versions(models) == []
    with pytest.raises(BundleError, match="no current bundle"):
        load_bundle(models)
    v1, v2 = _versions(2)
    _write(models, arrays, version=v1)
    assert read_current(models) == v1
    changed = dict(arrays, item_ids=np.arange(7, 14, dtype=np.int64))
    _write(models, changed, version=v2)
    assert read_current(models) == v2
    np.testing.assert_array_equal(load_bundle(models).arrays["item_ids"], np.arange(7, 14))

    rows = list_versions(models)
    assert [r["version"] for r in rows] == [v1, v2]
    assert [r["current"] for r in rows] == [False, True]
    n_files = len(arrays) + len(DOCUMENTS)
    for row in rows:
        folder = models / row["version"]
        assert row["valid"] and row["problem"] is None
        assert row["n_files"] == n_files
        assert row["total_bytes"] == sum(
            p.stat().st_size for p in folder.iterdir() if p.name != "manifest.json"
        )
        assert datetime.fromisoformat(row["created_at"]).tzinfo is not None

    set_current(models, v1)  # rollback
    assert read_current(models) == v1
    np.testing.assert_array_equal(load_bundle(models).arrays["item_ids"], np.arange(7))
    assert load_bundle(models, v2).version == v2  # explicit version still loads


def test_set_current_refuses_missing_or_corrupt_versions(tmp_path, arrays):
    models = tmp_path / "models"
    v1, v2, absent = _versions(3)
    _write(models, arrays, version=v1)
    _write(models, arrays, version=v2)
    with pytest.raises(BundleError, match="does not exist"):
        set_current(models, absent)
    path = models / v1 / "item_ids.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        set_current(models, v1)
    assert read_current(models) == v2


def test_prune_keeps_newest_and_never_current(tmp_path, arrays):
    models = tmp_path / "models"
    versions = _versions(5)
    for v in versions[:4]:
        _write(models, arrays, version=v, keep=2)
    assert [r["version"] for r in list_versions(models)] == versions[2:4]
    set_current(models, versions[2])  # roll back to the oldest kept version
    _write(models, arrays, version=versions[4], keep=1)  # new version becomes current
    assert [r["version"] for r in list_versions(models)] == [versions[4]]

    # Explicit prune after a rollback: the current one survives beyond keep.
    more = [new_version(T0 + timedelta(hours=1, minutes=i)) for i in range(3)]
    for v in more:
        _write(models, arrays, version=v, keep=None)
    set_current(models, versions[4])
    removed = prune(models, keep=1)
    assert removed == more[:2]
    assert [r["version"] for r in list_versions(models)] == [versions[4], more[2]]
    assert read_current(models) == versions[4]
    assert not any(p.name.startswith(".") for p in models.iterdir())
    with pytest.raises(BundleError, match="keep"):
        prune(models, keep=0)


def test_prune_removes_stale_leftovers_only(tmp_path, arrays):
    models = tmp_path / "models"
    _write(models, arrays)
    fresh = models / f".tmp-{new_version()}"
    stale = models / f".tmp-{new_version(T0 - timedelta(days=3))}"
    for folder in (fresh, stale):
        folder.mkdir()
        (folder / "item_ids.npy").write_bytes(b"partial")
    old = (datetime.now(timezone.utc) - timedelta(days=2)).timestamp()
    os.utime(stale, (old, old))
    assert prune(models, keep=5) == []
    assert fresh.exists() and not stale.exists()


# --------------------------------------------------------------------------- crash safety


def test_crash_mid_write_leaves_no_visible_version(tmp_path, arrays, monkeypatch):
    models = tmp_path / "models"
    v1, v2 = _versions(2)
    _write(models, arrays, version=v1)
    before = sorted(p.name for p in models.iterdir())
    real_write = bundle._write_array
    calls = []

    def failing_write(path, array):
        calls.append(path.name)
        if len(calls) == 3:
            raise OSError("No space left on device")
        real_write(path, array)

    monkeypatch.setattr(bundle, "_write_array", failing_write)
    with pytest.raises(OSError, match="No space"):
        _write(models, arrays, version=v2)
    assert len(calls) == 3  # the crash happened after some files were written
    assert read_current(models) == v1
    assert [r["version"] for r in list_versions(models)] == [v1]
    assert sorted(p.name for p in models.iterdir()) == before
    assert load_bundle(models).version == v1


def test_leftover_of_killed_write_is_invisible(tmp_path, arrays):
    models = tmp_path / "models"
    v1, v2 = _versions(2)
    _write(models, arrays, version=v1)
    partial = models / f".tmp-{v2}"
    partial.mkdir()
    (partial / "item_ids.npy").write_bytes(b"\x93NUMPY half")
    assert [r["version"] for r in list_versions(models)] == [v1]
    assert load_bundle(models).version == v1
    with pytest.raises(BundleError, match="crashed"):
        _write(models, arrays, version=v2)


# --------------------------------------------------------------------------- tamper detection


def test_flipped_byte_is_detected(tmp_path, arrays):
    models = tmp_path / "models"
    version = _write(models, arrays)
    path = models / version / "item_vectors.npy"
    data = bytearray(path.read_bytes())
    data[len(data) // 2 + 40] ^= 0x01
    path.write_bytes(bytes(data))
    problems = verify_bundle(models, version)
    assert len(problems) == 1
    assert "item_vectors.npy" in problems[0] and "sha256" in problems[0]
    with pytest.raises(BundleError, match="item_vectors.npy.*sha256"):
        load_bundle(models)
    # verify=False skips hashing only: the tampered values load, different from the original.
    unchecked = load_bundle(models, verify=False).arrays["item_vectors"]
    assert not np.array_equal(unchecked, arrays["item_vectors"])


def test_truncated_and_missing_files_are_detected(tmp_path, arrays):
    models = tmp_path / "models"
    version = _write(models, arrays)
    folder = models / version
    vectors = folder / "item_vectors.npy"
    size = vectors.stat().st_size
    vectors.write_bytes(vectors.read_bytes()[: size - 8])
    (folder / "vocab.json").unlink()
    problems = verify_bundle(models, version)
    assert len(problems) == 2
    assert any("item_vectors.npy" in p and f"manifest says {size}" in p for p in problems)
    assert any("vocab.json" in p and "missing" in p for p in problems)
    for verify in (True, False):
        with pytest.raises(BundleError, match="truncated"):
            load_bundle(models, verify=verify)
    (folder / "manifest.json").unlink()
    assert "manifest.json is missing" in verify_bundle(models, version)[0]
    assert list_versions(models)[0]["valid"] is False


def test_extra_unknown_files_are_fine(tmp_path, arrays):
    models = tmp_path / "models"
    version = _write(models, arrays)
    (models / version / "NOTES.txt").write_text("dilatih ulang 27 Nov")
    assert verify_bundle(models, version) == []
    assert set(load_bundle(models).arrays) == set(arrays)


@pytest.mark.parametrize("evil", ["../evil.npy", "/etc/passwd", "sub/x.npy", "..", "a\\b.npy", "run.py"])
def test_unsafe_manifest_names_are_refused(tmp_path, arrays, evil):
    models = tmp_path / "models"
    version = _write(models, arrays)
    (tmp_path / "models" / "evil.npy").write_bytes((models / version / "item_ids.npy").read_bytes())
    entry = _entry_for(models / version / "item_ids.npy")
    _rewrite_manifest(models / version, lambda m: m["files"].__setitem__(evil, entry))
    problems = verify_bundle(models, version)
    assert len(problems) == 1 and repr(evil) in problems[0] and "plain" in problems[0]
    for verify in (True, False):
        with pytest.raises(BundleError, match="plain"):
            load_bundle(models, verify=verify)
    assert list_versions(models)[0]["valid"] is False


def test_symlink_escaping_the_folder_is_refused(tmp_path, arrays):
    models = tmp_path / "models"
    version = _write(models, arrays)
    inside = models / version / "item_ids.npy"
    outside = tmp_path / "elsewhere.npy"
    outside.write_bytes(inside.read_bytes())  # same bytes: checksums alone would pass
    inside.unlink()
    inside.symlink_to(outside)
    problems = verify_bundle(models, version)
    assert len(problems) == 1 and "outside the bundle folder" in problems[0]
    for verify in (True, False):
        with pytest.raises(BundleError, match="outside the bundle folder"):
            load_bundle(models, verify=verify)


def test_symlink_inside_the_folder_is_allowed(tmp_path, arrays):
    models = tmp_path / "models"
    version = _write(models, arrays)
    folder = models / version
    (folder / "item_ids.npy").rename(folder / "ids_store")
    (folder / "item_ids.npy").symlink_to("ids_store")
    assert verify_bundle(models, version) == []
    np.testing.assert_array_equal(load_bundle(models).arrays["item_ids"], arrays["item_ids"])


class _Payload:
    """Pickling this would create a marker file: proof of code execution."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("mmap", [True, False])
def test_pickled_object_array_is_never_unpickled(tmp_path, arrays, mmap):
    models = tmp_path / "models"
    version = _write(models, arrays)
    marker = tmp_path / "pwned"
    path = models / version / "item_ids.npy"
    path.unlink()
    np.save(path, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    # A well-forged manifest: checksums match, so only allow_pickle=False stands in the way.
    _rewrite_manifest(models / version, lambda m: m["files"].__setitem__("item_ids.npy", _entry_for(path)))
    assert verify_bundle(models, version) == []
    with pytest.raises(BundleError, match="item_ids.npy.*pickled"):
        load_bundle(models, mmap=mmap)
    assert not marker.exists()


def test_manifest_version_must_match_folder(tmp_path, arrays):
    models = tmp_path / "models"
    v1, other = _versions(2)
    _write(models, arrays, version=v1)
    _rewrite_manifest(models / v1, lambda m: m.__setitem__("version", other))
    with pytest.raises(BundleError, match="must not be renamed"):
        load_bundle(models)
    assert "must not be renamed" in verify_bundle(models, v1)[0]
