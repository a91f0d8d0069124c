"""The scripts in examples/ run against the shared real data."""

import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MOS2 = ROOT.parent / "shared" / "data" / "mos2_haadf"


@pytest.mark.skipif(not MOS2.is_dir(), reason="shared/data/mos2_haadf is not beside the checkout")
def test_real_mos2_contrast_example(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["real_mos2_contrast.py", "--data", str(MOS2)])
    runpy.run_path(str(ROOT / "examples" / "real_mos2_contrast.py"), run_name="__main__")
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 + 4 + 1  # header, four real images, the simulation
    # Mo:S2 contrast of the simulation: 42^1.7 / (2·16^1.7) = 2.6 for point columns; the probe's
    # overlap of neighbouring columns lowers it a little
    assert float(lines[-1].split()[-1]) == pytest.approx(2.46, abs=0.3)
    for line in lines[1:5]:
        assert 1.5 < float(line.split()[-1]) < 4.5  # Mo columns brighter than S2, as in HAADF
