"""``none``: the undefended baseline, the "No Defense" row of every table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from benchbd import Defense, NoDefense, hookimpl


@dataclass
class Undefended(NoDefense):
    name: ClassVar[str] = "none"
    description: ClassVar[str] = "no defense: clean accuracy and attack success of the poisoned model"


@hookimpl
def benchbd_defenses() -> list[type[Defense]]:
    return [Undefended]
