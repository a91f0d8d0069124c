"""The STEMGym benchmark: chunks resume, statistics and verdict, report and figures (tiny
worlds, stand-in analysts; the shapes match tests/worlds/stemgym/test_agents.py so that the
compiled episodes are shared)."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from stemjax.worlds.stemgym import benchmark
from stemjax.worlds.stemgym.agents import empty_analyst, oracle_analyst
from stemjax.worlds.stemgym.benchmark import PRESETS, BenchmarkConfig, run_benchmark, summarise

QUICK = PRESETS["stemgym-quick"]


def test_chunked_run_resumes_without_recomputing_and_gives_identical_results(tmp_path):
    out = tmp_path / "run"
    assert run_benchmark(QUICK, out, progress=False, max_chunks=1) is None  # interrupted
    first = out / "chunks" / "raster_empty" / "000.npz"
    assert first.exists() and not (out / "results.json").exists()
    stamp = first.stat().st_mtime_ns, first.read_bytes()
    summary = run_benchmark(QUICK, out, progress=False)
    assert (first.stat().st_mtime_ns, first.read_bytes()) == stamp  # not recomputed
    fresh = run_benchmark(QUICK, tmp_path / "fresh", progress=False)
    a = np.load(out / "episodes.npz", allow_pickle=False)
    b = np.load(tmp_path / "fresh" / "episodes.npz", allow_pickle=False)
    for name in ("dec_auc", "scores", "dose_fraction", "tiles"):
        np.testing.assert_array_equal(a[name], b[name])
    assert summary["table"] == fresh["table"] and summary["verdict"] == fresh["verdict"]
    # what was written
    saved = json.loads((out / "results.json").read_text())
    assert np.shape(saved["per_episode_dec_auc"]["raster+oracle"]) == (2, 3, 4)
    assert saved["timing"]["rollouts"] == 3 * 2 * 3
    assert [r["batch"] for r in saved["timing"]["throughput"]] == [3]
    text = (out / "results.md").read_text()
    for heading in ("## Verdict", "## DEC-AUC per agent", "## Analyst effect", "## Time",
                    "### census", "### particles"):  # fmt: skip
        assert heading in text
    for name in ("dec_curves.png", "dec_auc_by_agent.png", "dec_auc_by_world.png"):
        assert (out / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the perfect analyst beats the empty one; the raster covers every tile
    assert saved["verdict"]["holds"] is True and saved["verdict"]["ratio"] is None
    assert a["coverage"][1].min() == 1.0
    # a folder holding another configuration, or chunks of other analysts, is refused
    with pytest.raises(ValueError, match="another configuration"):
        run_benchmark(dataclasses.replace(QUICK, episodes=4), out, progress=False)
    other = {"oracle": lambda state, world: oracle_analyst(state, world), "empty": empty_analyst}
    with pytest.raises(ValueError, match="other analysts"):
        run_benchmark(QUICK, out, analysts=other, progress=False)


def _synthetic(config, seed=0):
    """DEC-AUC (A, W, E, 4): the strong analyst far above the plain one, navigators alike."""
    rng = np.random.default_rng(seed)
    a, w, e = len(config.agents), len(benchmark.world_list(config)), config.episodes
    auc = 0.05 + 0.01 * rng.standard_normal((a, w, e, 4))
    for i, name in enumerate(config.agents):
        if name.endswith("+cnn"):
            auc[i] += 0.25
    return {"dec_auc": np.clip(auc, 0.0, 1.0)}


def test_statistics_have_the_expected_keys_and_the_verdict_follows_the_data():
    agents = ("random+none", "raster+none", "gp-ucb+none", "random+cnn", "raster+cnn",
              "gp-ucb+cnn", "planner+cnn")  # fmt: skip
    config = dataclasses.replace(BenchmarkConfig(), agents=agents, episodes=12, n_bootstrap=200,
                                 materials=("SrTiO3", "GaN"))  # fmt: skip
    summary = summarise(_synthetic(config), config)
    assert {"config", "agents", "worlds", "tasks", "table", "by_task", "overall", "wilcoxon",
            "tost", "analyst_effect", "verdict"} <= set(summary)  # fmt: skip
    a, w = len(config.agents), 6
    assert len(summary["table"]) == a * w * 4
    row = summary["table"][0]
    assert set(row) == {"agent", "world", "task", "mean", "low", "high", "n"}
    assert row["low"] <= row["mean"] <= row["high"] and row["n"] == 12
    assert {r["world"] for r in summary["table"]} == {f"{m}-{d}" for m in ("SrTiO3", "GaN")
                                                      for d in ("easy", "medium", "hard")}
    assert len(summary["by_task"]) == a * 4 and len(summary["overall"]) == a
    # navigator vs raster under the same analyst: random, gp-ucb (none); random, gp-ucb,
    # planner (cnn) = 5 comparisons, per cell (w × 4), per task (4) and overall (1)
    tests = summary["wilcoxon"]
    for scope, per in (("cell", w * 4), ("task", 4), ("overall", 1)):
        rows = [r for r in tests if r["scope"] == scope]
        assert len(rows) == 5 * per
        assert all(r["tests_in_family"] == 5 * per for r in rows)
        assert all(r["p_bonferroni"] == pytest.approx(min(1.0, r["p_value"] * 5 * per))
                   for r in rows)  # fmt: skip
        assert all(r["baseline"].startswith("raster+") for r in rows)
    assert {r["scope"] for r in summary["tost"]} == {"task", "overall"}
    assert set(summary["tost"][0]) >= {"mean_difference", "ci_low", "ci_high", "p_value",
                                       "equivalent", "margin"}  # fmt: skip
    effect = {e["navigator"]: e for e in summary["analyst_effect"]}
    assert set(effect) == {"random", "raster", "gp-ucb"}
    assert effect["raster"]["ratio"] == pytest.approx(
        effect["raster"]["mean_strong"] / effect["raster"]["mean_plain"])
    verdict = summary["verdict"]
    assert verdict["holds"] is True and verdict["ratio"] > 5.0
    assert verdict["better_than_raster"] == []
    assert "HOLDS" in verdict["text"] and "raster+cnn / raster+none" in verdict["text"]
    # a navigator far better than raster under the CNN breaks the finding
    data = _synthetic(config)
    data["dec_auc"][config.agents.index("gp-ucb+cnn")] += 0.3
    broken = summarise(data, config)["verdict"]
    assert broken["holds"] is False and broken["better_than_raster"] == ["gp-ucb+cnn"]
    with pytest.raises(ValueError, match="dec_auc"):
        summarise({"dec_auc": np.zeros((2, 2, 2, 4))}, config)


def test_configurations_are_checked_before_any_work(tmp_path):
    bad = {
        "agents": ("teleport+cnn",), "materials": ("Graphene",), "episodes": 1,
        "score_every": 5, "tost_margin": 0.0, "size": "huge",
    }  # fmt: skip
    for name, value in bad.items():
        with pytest.raises(ValueError, match=name):
            benchmark.validate(dataclasses.replace(QUICK, **{name: value}))
    with pytest.raises(ValueError, match="analyst 'cnn'"):
        benchmark.validate(dataclasses.replace(QUICK, agents=("raster+cnn",)),
                           analysts={"oracle": None})  # fmt: skip
    assert BenchmarkConfig.from_json(QUICK.to_json()) == QUICK
    keys = benchmark.episode_keys(0, 3, 5)
    np.testing.assert_array_equal(  # episode keys do not depend on how many are drawn
        np.asarray(jax.random.key_data(keys[:2])),
        np.asarray(jax.random.key_data(benchmark.episode_keys(0, 3, 2))))
