"""The layering is a contract: `lint-imports` (import-linter, contracts in pyproject.toml) passes on
the tree, and fails, naming the import, when a module imports uphill."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("recommender", "api", "training")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is a dev dependency: python3 dev.py test")


def _lint(tree: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(tree))
    return subprocess.run([str(LINT), "--no-cache", "--config", str(tree / "pyproject.toml")], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=120)


def _copy_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_tree_keeps_every_contract():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("module, line, contract", [
    ("recommender/store/uphill.py", "from recommender.serving import engine\n",
     "Inside recommender, lower layers never import higher ones"),
    ("recommender/text/uphill.py", "import recommender.evaluation.metrics\n",
     "Inside recommender, lower layers never import higher ones"),
    ("recommender/domain_uphill.py", "from api import create_app\n",
     "The core library imports neither the service nor the jobs"),
    ("api/uphill.py", "from training import cli\n", "The service does not import the offline jobs"),
])
def test_an_uphill_import_breaks_the_build_and_is_named(tmp_path, module, line, contract):
    tree = _copy_tree(tmp_path)
    (tree / module).write_text('"""A deliberately wrong import."""\n' + line)
    result = _lint(tree)
    assert result.returncode != 0
    assert f"{contract} BROKEN" in result.stdout
    importer = module[:-3].replace("/", ".")
    assert importer in result.stdout  # the message names the offending module
