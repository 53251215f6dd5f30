"""Names for the plugins of a run: one seen under several parameter sets gets a name per set."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


#: Record fields that hold one value per attack, keyed by the attack's name.
PER_ATTACK_FIELDS = (
    "asr", "asr_after", "asr_boosted", "asr_boosted_after", "auroc_per_attack", "target_found", "targets", "clean_to_target",
    "robust_acc", "robust_acc_after", "der",
)


def label_configurations(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records with every plugin that appears under several parameter sets renamed per set, e.g.
    ``patch (ratio=0.05)`` and ``patch (ratio=0.1)``; other plugins keep their names. Records written before
    records carried their ``params`` are left as they are."""
    with_params = [r for r in records if "params" in r]
    defense_labels = _variant_labels((r["defense"], defense_params(r["params"])) for r in with_params)
    attack_labels = _variant_labels(pair for r in with_params for pair in r["params"]["attacks"].items())
    labelled = []
    for record in records:
        if "params" in record:
            params = record["params"]
            rename = {name: attack_labels.get((name, _params_key(p)), name) for name, p in params["attacks"].items()}
            record = {
                **record,
                "defense": defense_labels.get((record["defense"], _params_key(defense_params(params))), record["defense"]),
                "attacks": [rename[name] for name in record["attacks"]],
                **{
                    key: {rename.get(name, name): value for name, value in record[key].items()}
                    for key in PER_ATTACK_FIELDS
                    if isinstance(record.get(key), dict)
                },
            }
        labelled.append(record)
    return labelled


def defense_params(params: dict[str, Any]) -> dict[str, Any]:
    """A record's defense parameters with the harness settings its unit was given (``--trusted``,
    ``--clean-models``): runs that differ only in those get a label each."""
    return {**params["defense"], **params.get("harness", {})}


def _params_key(params: Any) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def _variant_labels(pairs: Iterable[tuple[str, dict[str, Any]]]) -> dict[tuple[str, str], str]:
    """{(plugin name, parameter key): label} for the plugins seen with more than one parameter set."""
    variants: dict[str, dict[str, dict[str, Any]]] = {}
    for name, params in pairs:
        variants.setdefault(name, {})[_params_key(params)] = params
    labels = {}
    for name, by_key in variants.items():
        if len(by_key) < 2:
            continue
        keys = sorted({key for params in by_key.values() for key in params})
        differing = [key for key in keys if len({json.dumps(p.get(key), default=str) for p in by_key.values()}) > 1]
        for digits in (4, None):
            named = {
                key: f"{name} ({', '.join(f'{k}={_shown(params.get(k), digits)}' for k in differing)})"
                for key, params in by_key.items()
            }
            if len(set(named.values())) == len(named):
                break
        labels.update({(name, key): label for key, label in named.items()})
    return labels


def _shown(value: Any, digits: int | None) -> str:
    """A parameter's value in a label: a float rounded to ``digits`` significant digits (all of them when ``None``),
    so that a budget of 8/255 reads 0.03137, not 0.03137254901960784."""
    if isinstance(value, float) and digits is not None:
        return str(float(f"{value:.{digits}g}"))
    return str(value)
