"""The `stemjax demo` command: runs end to end and reports what it did."""

import json

import numpy as np
import pytest

from stemjax.cli import main


def test_demo_writes_images_and_a_consistent_summary(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--pixels", "64", "--step-A", "0.25", "--seed", "3"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "e-/Å² per frame" in printed and "knocked on by frame 1" in printed
    for name in ("haadf_before.png", "haadf_after.png", "haadf_before_after.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    # 30 pA × 20 µs = 3744.9 e⁻ per position, over (0.25 Å)²
    assert summary["electrons_per_position"] == np.float32(30 * 20 * 6.241509074).item() or abs(
        summary["electrons_per_position"] - 3744.9
    ) < 0.1
    assert abs(summary["dose_per_frame_e_per_A2"] - 3744.9 / 0.0625) < 2.0
    before = np.load(out / "haadf_before.npy", allow_pickle=False)
    after = np.load(out / "haadf_after.npy", allow_pickle=False)
    assert before.shape == after.shape == (64, 64)
    assert summary["destroyed_by_first_frame"]["S_atoms"] > 0  # 200 keV sputters S
    assert summary["destroyed_by_first_frame"]["Mo_atoms"] == 0  # below Mo's threshold


def test_sweep_stemgym_preset_runs_the_agent_grid(tmp_path, capsys):
    out = tmp_path / "stemgym"
    code = main(["sweep", "--preset", "stemgym-quick", "--out", str(out), "--campaigns", "3",
                 "--no-progress"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "analyst-over-navigator finding" in printed and "results.md" in printed
    summary = json.loads((out / "results.json").read_text())
    assert summary["config"]["episodes"] == 3 and len(summary["agents"]) == 3
    assert {r["task"] for r in summary["table"]} == {"census", "phase", "search", "particles"}
    assert (out / "figures" / "dec_curves.png").exists()
    with pytest.raises(ValueError, match="--surrogate"):
        main(["sweep", "--preset", "stemgym-quick", "--out", str(out), "--surrogate", "gp"])
