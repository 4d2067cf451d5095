"""The plugin is installed where twistd finds it.

A plain (non-editable) `pip install .` is built from a copy of the
sources and installed into a bare folder; a Python that sees only that
folder and the venv's site-packages (no `.pth` files, so not the
editable install of this checkout) must find `realm` among twistd's
plugins. The editable install the Makefile makes is checked through
the venv's own `twistd --help`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120.0

FIND_PLUGIN = """
import sys
sys.argv = ["twistd", "--help"]
from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
import realm, twisted.plugins.realm_plugin as plugin
print("REALM", realm.__file__)
print("PLUGIN", plugin.__file__)
print("TAPNAMES", *sorted(p.tapname for p in getPlugins(IServiceMaker)))
from twisted.scripts.twistd import run
run()
"""


def _can_build_wheels() -> bool:
    if importlib.util.find_spec("wheel") is not None:
        return True
    try:
        import setuptools.command.bdist_wheel  # noqa: F401  (setuptools >= 70.1)
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain `pip install --target` of a copy of this checkout."""
    base = tmp_path_factory.mktemp("pip")
    source = base / "src"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "realm", source / "realm",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (source / "twisted" / "plugins").mkdir(parents=True)
    shutil.copy(ROOT / "twisted" / "plugins" / "realm_plugin.py",
                source / "twisted" / "plugins" / "realm_plugin.py")
    target = base / "site"
    # Build with this venv's setuptools when it can make a wheel (what
    # `make test` installs); else let pip fetch pyproject's build backend.
    isolation = ["--no-build-isolation", "--no-index"] if _can_build_wheels() else []
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", *isolation,
         "--quiet", "--target", str(target), str(source)],
        cwd=base, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stdout + result.stderr
    return target


def test_a_plain_pip_install_ships_the_plugin(installed: Path) -> None:
    plugins = installed / "twisted" / "plugins"
    assert (plugins / "realm_plugin.py").is_file()
    assert not (plugins / "__init__.py").exists()  # would hide Twisted's own
    assert (installed / "realm" / "tap.py").is_file()


def test_a_plain_pip_install_ships_the_reigns_story(installed: Path) -> None:
    # realm.scenes reads it at import: without it the server cannot start.
    assert (installed / "realm" / "data" / "scenes.toml").is_file()
    assert (installed / "realm" / "data" / "__init__.py").is_file()


def test_a_plain_pip_install_ships_the_chronicles_migrations(installed: Path) -> None:
    shipped = sorted(path.name for path in (installed / "realm" / "migrations").glob("*.sql"))
    assert shipped == sorted(path.name for path in (ROOT / "realm" / "migrations").glob("*.sql"))
    assert shipped


def test_twistd_finds_the_plain_install(installed: Path, tmp_path: Path) -> None:
    site_packages = sysconfig.get_paths()["purelib"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed), site_packages])}
    result = subprocess.run(
        [sys.executable, "-S", "-c", FIND_PLUGIN],  # -S: no .pth, no editable
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    found = dict(line.split(" ", 1) for line in out.splitlines()
                 if line.startswith(("REALM ", "PLUGIN ", "TAPNAMES ")))
    assert found["REALM"].startswith(str(installed)), found
    assert found["PLUGIN"].startswith(str(installed)), found
    assert "realm" in found["TAPNAMES"].split()
    assert any(line.split()[:1] == ["realm"] for line in out.splitlines()), out


def test_the_venvs_twistd_lists_realm(tmp_path: Path) -> None:
    twistd = Path(sys.executable).with_name("twistd")
    result = subprocess.run([str(twistd), "--help"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    commands = [line.split()[0] for line in result.stdout.splitlines()
                if line.startswith("    ") and line.split()]
    assert "realm" in commands, result.stdout
