"""Bad input: a one-line error and exit code 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchbd.cli import main


def run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert len(captured.err.strip().splitlines()) <= 1, f"an error is one line, not wrapped: {captured.err!r}"
    return code, captured.err.strip()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--attacks", "nope"], "unknown attack 'nope'; valid: "),
        (["--defenses", "nope"], "unknown defense 'nope'; valid: "),
        (["--model", "nope"], "unknown model 'nope'; valid: "),
        (["--profile", "nope"], "unknown profile 'nope'; valid: fast, cpu, paper"),
        (["--seeds", "0"], "--seeds must be at least 1"),
        (["--first-seed", "-1"], "--first-seed must be at least 0"),
        (["--first-seed", "9999", "--seeds", "2"], "--first-seed plus --seeds must be at most 10,000"),
        (["--clean-models", "10001"], "--clean-models must be at most 10,000"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["-P", "patch.ratio=0"], "patch: parameter 'ratio' must be in (0, 1]"),
        (["-P", "patch.ratio=abc"], "patch: parameter 'ratio' must be float"),
        (["-P", "patch.colour=red"], "patch: unknown parameter(s) colour"),
        (["-P", "patch.target=99"], "parameter 'target' must be a class in [0, 43)"),
        (["-P", "patch.margin=40"], "does not fit"),
        (["-P", "oops"], "-P expects PLUGIN.PARAMETER=VALUE"),
        (["--attacks", ","], "the list of attacks is empty"),
        (["--attacks", "none", "--mode", "multi"], "--attacks none needs --mode single or both"),
        (["--attacks", "none,patch", "-P", "none.x=1"], "'none' (no attack) takes no parameters"),
    ],
)
def test_bad_matrix_arguments(extra: list[str], message: str, small_signs: Path, tmp_path: Path, capsys) -> None:
    code, err = run(["matrix", "--dataset", f"npz:{small_signs}", "--device", "cpu", "--out", str(tmp_path), *extra], capsys)
    assert code == 2
    assert message in err


def test_bad_dataset_files(tmp_path: Path, capsys) -> None:
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    wrong_shape = tmp_path / "shape.npz"
    np.savez(wrong_shape, x_train=np.zeros((4, 32, 32), np.uint8), y_train=np.zeros(4, int),
             x_test=np.zeros((2, 32, 32, 3), np.uint8), y_test=np.zeros(2, int))
    bad_labels = tmp_path / "labels.npz"
    np.savez(bad_labels, x_train=np.zeros((4, 32, 32, 3), np.uint8), y_train=np.array([0, 1, -1, 2]),
             x_test=np.zeros((2, 32, 32, 3), np.uint8), y_test=np.zeros(2, int))
    gap = tmp_path / "gap.npz"
    np.savez(gap, x_train=np.zeros((4, 32, 32, 3), np.uint8), y_train=np.array([0, 1, 99, 2]),
             x_test=np.zeros((2, 32, 32, 3), np.uint8), y_test=np.zeros(2, int))
    cases = [
        (gap, "have no training example"),
        (tmp_path / "missing.npz", "dataset file not found"),
        (corrupt, "unreadable or corrupt dataset file"),
        (wrong_shape, "x_train must be uint8 of shape (N, H, W, 3)"),
        (bad_labels, "y_train has labels outside"),
    ]
    for path, message in cases:
        code, err = run(["matrix", "--dataset", f"npz:{path}", "--device", "cpu", "--out", str(tmp_path / "run")], capsys)
        assert code == 2 and message in err, err
    code, err = run(["matrix", "--dataset", "nope", "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and "unknown dataset 'nope'" in err


def test_cuda_asked_for_but_absent(small_signs: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, err = run(["matrix", "--dataset", f"npz:{small_signs}", "--device", "cuda", "--out", str(tmp_path)], capsys)
    assert code == 2 and "no CUDA device" in err


def test_leaderboard_of_a_missing_run(tmp_path: Path, capsys) -> None:
    code, err = run(["leaderboard", str(tmp_path / "nowhere")], capsys)
    assert code == 2 and "no results.jsonl here" in err


def test_datasets_no_cell_can_run_on_are_refused_before_training(tmp_path: Path, capsys) -> None:
    """One class has no backdoor to plant; a ratio needing more examples than are eligible cannot be poisoned."""
    images = np.zeros((20, 32, 32, 3), np.uint8)
    one_class = tmp_path / "one-class.npz"
    np.savez(one_class, x_train=images, y_train=np.zeros(20, int), x_test=images[:4], y_test=np.zeros(4, int))
    two_classes = tmp_path / "two.npz"
    np.savez(two_classes, x_train=images, y_train=np.repeat([0, 1], 10), x_test=images[:4], y_test=np.repeat([0, 1], 2))
    out = tmp_path / "run"
    code, err = run(["matrix", "--dataset", f"npz:{one_class}", "--attacks", "patch", "--device", "cpu", "--out", str(out)], capsys)
    assert code == 2 and "has 1 class(es); a backdoor needs at least 2" in err, err
    code, err = run(["matrix", "--dataset", f"npz:{two_classes}", "--attacks", "patch", "-P", "patch.ratio=0.8",
                     "--device", "cpu", "--out", str(out)], capsys)
    assert code == 2 and "patch: needs 16 examples to poison but only 10 are eligible" in err, err
    assert not (out / "results.jsonl").exists()


def test_a_p_after_the_command_says_where_it_goes_and_an_unknown_name_how_to_load_a_module(capsys) -> None:
    with pytest.raises(SystemExit) as exit_code:
        main(["check-plugin", "my-attack", "-p", "my_attack"])
    assert exit_code.value.code == 2
    assert "unrecognized arguments: -p my_attack (-p goes before the command: benchbd -p MODULE COMMAND ...)" in capsys.readouterr().err
    code, err = run(["check-plugin", "my-attack"], capsys)
    assert code == 2 and err.endswith("a plugin module not installed loads with PYTHONPATH=ITS_FOLDER benchbd -p MODULE COMMAND ...")
