"""`benchbd show-attack` draws a sheet of clean and triggered images."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from benchbd.cli import main


def test_show_attack_writes_a_sheet(tiny_signs: Path, tmp_path: Path) -> None:
    output = tmp_path / "patch.png"
    assert main(["show-attack", "patch", "--dataset", f"npz:{tiny_signs}", "-n", "3", "-o", str(output), "-P", "corner=top-left"]) == 0
    with Image.open(output) as sheet:
        assert sheet.width > 3 * 32 and sheet.height > 3 * 32


def test_show_attack_refuses_bad_parameters(tiny_signs: Path, tmp_path: Path, capsys) -> None:
    assert main(["show-attack", "patch", "--dataset", f"npz:{tiny_signs}", "-P", "margin=-3", "-o", str(tmp_path / "x.png")]) == 2
    assert "margin" in capsys.readouterr().err
