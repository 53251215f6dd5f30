"""Plugins are found through the ``benchbd`` entry points: the built-ins, and a third party's."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchbd.errors import BenchbdError
from benchbd.registry import default_registry


def test_builtins_come_from_entry_points() -> None:
    registry = default_registry()
    assert "patch" in registry.names("attacks")
    assert {"none", "spectral"} <= set(registry.names("defenses"))
    assert {"synth-signs", "gtsrb", "cifar10", "npz"} <= set(registry.names("datasets"))
    assert {"small-cnn", "preact-resnet18", "resnet50"} <= set(registry.names("models"))
    entry = registry.tables["attacks"]["patch"]
    assert (entry.kind, entry.distribution) == ("data", "benchbd")
    assert registry.tables["defenses"]["spectral"].kind == "example"


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(BenchbdError, match=r"unknown attack 'nope'; valid: .*patch"):
        default_registry().attack("nope")


THIRD_PARTY_MODULE = '''
from dataclasses import dataclass
from typing import ClassVar

import benchbd


@dataclass
class CornerDot(benchbd.DataPoisoningAttack):
    name: ClassVar[str] = "corner-dot"
    description: ClassVar[str] = "a third party's attack"

    def trigger(self, x, *, test_time=False):
        x = x.clone()
        x[..., 0, 0] = 1.0
        return x


@benchbd.hookimpl
def benchbd_attacks():
    return [CornerDot]
'''

THIRD_PARTY_PYPROJECT = '''
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "benchbd-corner-dot"
version = "0.1"

[project.entry-points.benchbd]
corner-dot = "corner_dot"
'''


def test_third_party_plugin_is_discovered(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "pyproject.toml").write_text(textwrap.dedent(THIRD_PARTY_PYPROJECT))
    (package / "corner_dot.py").write_text(textwrap.dedent(THIRD_PARTY_MODULE))
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(package)],
        check=True,
    )
    def list_attacks(*options: str, autoload: bool = True) -> str:
        env = {"PYTHONPATH": str(target), "COLUMNS": "200", "PATH": "/usr/bin:/bin"}
        if not autoload:
            env["BENCHBD_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        listing = subprocess.run([sys.executable, "-m", "benchbd.cli", *options, "list", "attacks"],
                                 capture_output=True, text=True, env=env)
        assert listing.returncode == 0, listing.stderr
        return listing.stdout

    row = next(line for line in list_attacks().splitlines() if "corner-dot" in line)
    assert "benchbd-corner-dot" in row and "data" in row
    without_autoload = list_attacks(autoload=False)
    assert "corner-dot" not in without_autoload and "patch" in without_autoload
    assert "corner-dot" in list_attacks("-p", "corner-dot", autoload=False)
