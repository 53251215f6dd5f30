"""``benchbd matrix --config FILE.toml``: the matrix flags as TOML keys, plugin parameters as tables.

    dataset = "gtsrb"
    seeds = 3
    defenses = "all"                    # "all", or a list of names: ["none", "badloss"] ...
    multi_attacks = ["patch", "wanet"]  # the multi-attack cell (default: BaDLoss's six with "all")

    [attacks.patch]                     # ... or tables, which choose the plugins (in this order)
    [attacks.wanet]
    strength = 1.0                      # and set their parameters

    [simulation]                        # the training-run unit's simulated servers
    servers = 8

(TOML puts every key after a table's header into that table: the top-level keys come first.)

Instead of one attacks × defenses product, a file may give several, each a ``[[blocks]]`` table (``attacks``,
``defenses``, optional ``mode``, default single, and ``multi_attacks``); plugin parameters then go in a
``[params.NAME]`` table:

    [[blocks]]
    attacks = ["patch"]
    defenses = ["none", "badloss", "spectral"]
    mode = "both"
    multi_attacks = ["patch", "wanet"]
    [[blocks]]
    attacks = ["patch", "blind"]
    defenses = ["rttd"]
    [params.patch]
    ratio = 0.05

Command-line flags override the file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from benchbd.errors import BenchbdError
from benchbd.harness.config import Block

SCALARS: dict[str, type | tuple[type, ...]] = {
    "dataset": str, "model": str, "seeds": int, "first_seed": int, "mode": str, "profile": str, "device": str,
    "out": str, "data_root": str, "cell_timeout": (int, float), "clean_models": int, "executor": str, "ray_address": str,
    "trusted": int, "epochs": int, "precision": str,
}
TABLES = ("attacks", "defenses", "multi_attacks", "simulation", "blocks", "params")
BLOCK_KEYS = ("attacks", "defenses", "mode", "multi_attacks")


def _plugins(table: dict[str, Any], key: str, params: dict[str, dict[str, Any]]) -> list[str] | None:
    """``key`` as "all", a list of names, or a table of per-plugin parameter tables."""
    value = table.get(key)
    if value is None:
        return None
    if value == "all":
        return ["all"]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    if isinstance(value, dict):
        for name, plugin_params in value.items():
            if not isinstance(plugin_params, dict):
                raise BenchbdError(f"config: [{key}.{name}] must be a table of parameters; got {plugin_params!r}")
            params[name] = dict(plugin_params)
        return list(value) or None
    raise BenchbdError(f"config: '{key}' must be \"all\", a list of names, or [{key}.NAME] tables; got {value!r}")


def read_config(path: Path) -> dict[str, Any]:
    """The :class:`~benchbd.harness.matrix.MatrixConfig` keyword arguments a TOML file sets."""
    try:
        table = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BenchbdError(f"config file not found: {path}") from None
    except OSError as exc:
        raise BenchbdError(f"config file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BenchbdError(f"{path}: not valid TOML ({exc})") from None
    unknown = sorted(set(table) - set(SCALARS) - set(TABLES))
    if unknown:
        raise BenchbdError(f"{path}: unknown key(s) {', '.join(unknown)}; valid: {', '.join([*SCALARS, *TABLES])}")
    config: dict[str, Any] = {}
    for key, kind in SCALARS.items():
        if key in table:
            if not isinstance(table[key], kind) or isinstance(table[key], bool):
                raise BenchbdError(f"{path}: '{key}' has the wrong type ({type(table[key]).__name__})")
            config[key] = Path(table[key]) if key in ("out", "data_root") else table[key]
    params: dict[str, dict[str, Any]] = {}
    for key in ("attacks", "defenses"):
        names = _plugins(table, key, params)
        if names is not None:
            config[key] = names
    multi = table.get("multi_attacks")
    if multi is not None:
        if not (isinstance(multi, list) and all(isinstance(v, str) for v in multi)):
            raise BenchbdError(f"{path}: 'multi_attacks' must be a list of attack names; got {multi!r}")
        config["multi_attacks"] = multi
    if "simulation" in table:
        if not isinstance(table["simulation"], dict):
            raise BenchbdError(f"{path}: [simulation] must be a table of parameters; got {table['simulation']!r}")
        params["simulation"] = dict(table["simulation"])
    if "blocks" in table:
        config["blocks"] = _blocks(path, table["blocks"])
    if not isinstance(table.get("params", {}), dict):
        raise BenchbdError(f"{path}: [params] must hold a table per plugin ([params.NAME]); got {table['params']!r}")
    for name, values in table.get("params", {}).items():
        if not isinstance(values, dict):
            raise BenchbdError(f"{path}: [params.{name}] must be a table of parameters; got {values!r}")
        params.setdefault(name, {}).update(values)
    config["params"] = params
    return config


def _names(path: Path, where: str, value: Any) -> tuple[str, ...]:
    if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
        raise BenchbdError(f"{path}: {where} must be a non-empty list of names; got {value!r}")
    return tuple(value)


def _blocks(path: Path, blocks: Any) -> list[Block]:
    """The ``[[blocks]]`` tables as :class:`~benchbd.harness.config.Block`s."""
    if not (isinstance(blocks, list) and blocks and all(isinstance(b, dict) for b in blocks)):
        raise BenchbdError(f"{path}: 'blocks' must be [[blocks]] tables")
    out = []
    for i, block in enumerate(blocks, 1):
        unknown = sorted(set(block) - set(BLOCK_KEYS))
        if unknown or "attacks" not in block or "defenses" not in block:
            raise BenchbdError(f"{path}: block {i} needs attacks and defenses and may have mode and multi_attacks; got {', '.join(sorted(block))}")
        mode = block.get("mode", "single")
        if mode not in ("single", "multi", "both"):
            raise BenchbdError(f"{path}: block {i}'s mode must be single, multi or both; got {mode!r}")
        multi = _names(path, f"block {i}'s multi_attacks", block["multi_attacks"]) if "multi_attacks" in block else None
        out.append(Block(_names(path, f"block {i}'s attacks", block["attacks"]), _names(path, f"block {i}'s defenses", block["defenses"]), mode, multi))
    return out
