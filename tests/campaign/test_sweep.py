"""Sweeps: chunked, resumable, sharded; labelled results on disk; configurations checked first."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stemjax.campaign import SweepConfig, read_netcdf, sweep, validate
from stemjax.cli import main
from stemjax.worlds import data_dir



def _pfm_available() -> bool:
    try:
        return (data_dir() / "pfm_pto_beacon" / "pfm_pto_beacon.npz").exists()
    except FileNotFoundError:
        return False


pytestmark = pytest.mark.skipif(not _pfm_available(), reason="the shared PFM data are missing")

SMALL = SweepConfig(
    world="pfm", policies=("ei", "random"), campaigns=5, steps=3, chunk=2, fit_steps=5,
    refit_steps=1, feature_space=False, n_clusters=8, n_bins=10,
)  # fmt: skip


def test_an_interrupted_sweep_resumes_to_the_uninterrupted_result(tmp_path):
    whole = sweep(SMALL, tmp_path / "whole", progress=False)
    assert whole["index"].shape == (2, 5, 3) and whole["seeds"].shape == (2, 5, 10)
    # policies are paired: the same campaign starts from the same seeds under each policy
    np.testing.assert_array_equal(whole["seeds"][0], whole["seeds"][1])
    assert len({tuple(s) for s in whole["seeds"][0]}) == 5  # campaigns differ

    part = tmp_path / "part"
    assert sweep(SMALL, part, progress=False, max_chunks=2) is None
    written = sorted(p.relative_to(part).as_posix() for p in part.glob("chunks/*/*.npz"))
    assert written == ["chunks/ei/00000.npz", "chunks/random/00000.npz"]
    stamp = (part / "chunks/ei/00000.npz").stat().st_mtime_ns
    resumed = sweep(SMALL, part, progress=False)
    assert (part / "chunks/ei/00000.npz").stat().st_mtime_ns == stamp  # not recomputed
    for k in whole:
        np.testing.assert_array_equal(resumed[k], whole[k])

    results, config, info = read_netcdf(part / "results.nc")
    assert config == SMALL and "jax" in info
    for k in whole:
        np.testing.assert_allclose(results[k], whole[k], rtol=1e-6)


def test_bad_configurations_fail_before_any_work(tmp_path):
    cases = [
        (dict(policies=("ei", "greedy")), "policies must be among"),
        (dict(world="moon"), "world must be one of"),
        (dict(steps=1300), r"steps must be at most 1215 for world 'pfm'"),
        (dict(campaigns=0), "campaigns must be an integer >= 1"),
        (dict(surrogate="svm"), "model must be one of"),
    ]
    for change, match in cases:
        with pytest.raises(ValueError, match=match):
            sweep(dataclasses.replace(SMALL, **change), tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(dataclasses.replace(SMALL, seed=9).to_json())
    with pytest.raises(ValueError, match="holds a sweep with another configuration"):
        validate(SMALL, tmp_path / "other")
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="must be a folder"):
        validate(SMALL, tmp_path / "file")
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ValueError, match="not writable"):
            validate(SMALL, locked / "out")


def test_campaigns_sharded_over_two_host_devices_equal_one_device(tmp_path):
    config = dataclasses.replace(SMALL, campaigns=4, policies=("ei",))
    one = sweep(config, tmp_path / "one", progress=False)
    script = (
        "import sys, numpy as np, jax\n"
        "from stemjax.campaign import SweepConfig, sweep\n"
        "assert jax.device_count() == 2, jax.devices()\n"
        "cfg = SweepConfig.from_json(open(sys.argv[1]).read())\n"
        "sweep(cfg, sys.argv[2], progress=False)\n"
    )
    (tmp_path / "cfg.json").write_text(config.to_json())
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu")  # fmt: skip
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "cfg.json"),
                    str(tmp_path / "two")], check=True, env=env)  # fmt: skip
    two, _, info = read_netcdf(tmp_path / "two" / "results.nc")
    assert info["devices"].count(",") == 1  # two devices ran it
    np.testing.assert_array_equal(two["index"], one["index"])
    np.testing.assert_allclose(two["mae"], one["mae"], rtol=1e-4)


def test_sweep_command_writes_summary_figures_and_netcdf(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["sweep", "--preset", "quick", "--policies", "ei", "mu", "--campaigns", "3",
                 "--steps", "2", "--chunk", "3", "--fit-steps", "5", "--refit-steps", "1",
                 "--no-feature-space", "--no-progress", "--out", str(out)])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "| target coverage | 2 |" in text and "published ei" in text
    assert (out / "results.nc").exists() and (out / "summary.md").exists()
    figures = {p.name for p in (out / "figures").glob("*.png")}
    assert {"coverage_target.png", "mae.png", "trajectory_ei.png", "trajectory_mu.png"} <= figures
    saved = json.loads((out / "config.json").read_text())
    assert saved["campaigns"] == 3 and saved["policies"] == ["ei", "mu"]
