"""The STEMGym dose-budget benchmark: agents × worlds × tasks × episodes, scored by DEC-AUC.

``run_benchmark(config, out)`` runs every agent of ``config.agents`` (``"navigator+analyst"``,
e.g. ``"raster+cnn"``) for ``config.episodes`` episodes on every world (material ×
difficulty) and scores each episode on the four tasks (:mod:`~stemjax.worlds.stemgym.agents`:
one rollout per agent, world and episode, scored on every task; no navigator reads the task).

- **Keys.** World i of :data:`~stemjax.worlds.stemgym.worlds.MATERIALS` ×
  :data:`~stemjax.worlds.stemgym.worlds.DIFFICULTIES` is built from
  ``fold_in(key(world_seed), i)``, and its episode e runs on
  ``fold_in(fold_in(key(seed), i), e)`` under every agent, so the DEC-AUCs of two agents are
  paired samples, whatever the chunking or the subset of worlds run.
- **Chunks.** An agent's worlds run ``worlds_per_chunk`` at a time, as one compiled call
  (``vmap`` over worlds and episodes); each finished chunk is written at once to
  ``<out>/chunks/<agent>/<i>.npz`` (temporary name, then renamed). Started again on the same
  folder with the same configuration, the benchmark skips the chunks on disk; a folder holding
  another configuration, or chunks made by other analysts (their weights and settings are
  fingerprinted in ``analysts.json``), is refused before any work starts. No pickle: NumPy
  arrays and JSON.
- **Statistics** (:func:`summarise`). Mean DEC-AUC with percentile-bootstrap 95 % intervals
  per agent × world × task (over episodes), per agent × task and per agent (over worlds and
  episodes; the per-agent value of an episode is its mean over tasks); paired Wilcoxon
  signed-rank tests of every navigator against raster under the same analyst, with
  Bonferroni correction within each family (all world × task cells; the four tasks; the
  overall means); TOST equivalence tests of the same pairs (margin ``tost_margin`` DEC-AUC);
  the analyst effect (the same navigator with ``strong_analyst`` against ``plain_analyst``);
  and the verdict on the paper's finding that the analyst, not the navigator, decides dose
  efficiency, with the ratio raster + strong / raster + plain (paper: 0.287 / 0.052 = 5.5).
- **Outputs.** ``results.json`` (configuration, statistics, per-episode DEC-AUC, timings),
  ``results.md``, ``episodes.npz`` (per-episode DEC-AUC and curves) and ``figures/``
  (``dec_curves.png``, ``dec_auc_by_agent.png``, ``dec_auc_by_world.png``).

Dose fractions and scores are dimensionless in [0, 1]; times in s.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import re
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from stemjax.metrics import dose_efficiency_curve
from stemjax.stats import bonferroni, bootstrap_mean_ci, paired_wilcoxon, tost_paired
from stemjax.worlds.stemgym.agents import (
    GPUCB,
    Agent,
    PlannerUCB,
    RandomNavigator,
    RasterNavigator,
    empty_analyst,
    oracle_analyst,
    run_episodes,
    run_grid,
    stack_worlds,
)
from stemjax.worlds.stemgym.tasks import TASKS
from stemjax.worlds.stemgym.worlds import DIFFICULTIES, MATERIALS, SIZES, make_world

__all__ = [
    "DEFAULT_AGENTS",
    "NAVIGATORS",
    "PRESETS",
    "BenchmarkConfig",
    "default_analysts",
    "episode_keys",
    "gather",
    "make_agents",
    "measure_throughput",
    "run_benchmark",
    "summarise",
    "validate",
    "world_list",
    "write_figures",
    "write_report",
]

NAVIGATORS = {
    "random": RandomNavigator,
    "raster": RasterNavigator,
    "gp-ucb": GPUCB,
    "planner": PlannerUCB,
}
"""Navigator name → class (default settings; see :mod:`~stemjax.worlds.stemgym.agents`)."""

DEFAULT_AGENTS = ("random+none", "raster+none", "gp-ucb+none", "raster+cnn", "gp-ucb+cnn",
                  "planner+cnn")  # fmt: skip
"""The paper's six agents: random, raster and GP-UCB with the peak finder ("none"), and raster,
GP-UCB and the five-mode planner (the paper's STEMAgent) with the CNN. ``"random+cnn"`` is
available too (the full {random, raster, GP-UCB} × {none, CNN} grid)."""

BASELINE = "raster"
"""The navigator every other navigator is tested against, under the same analyst."""


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """What a benchmark runs (JSON-serialisable; saved as ``<out>/config.json``).

    Attributes:
        agents: agent names ``"navigator+analyst"``, navigators from :data:`NAVIGATORS`,
            analysts named in the mapping given to :func:`run_benchmark` (default
            :func:`default_analysts`: ``none``, ``cnn``, ``oracle``, ``empty``).
        materials: materials run (subset of ``MATERIALS``).
        difficulties: difficulties run (subset of ``DIFFICULTIES``).
        size: world size (``SIZES``).
        episodes: episodes per agent and world, ≥ 2 (the paper: ≥ 30).
        steps: steps per episode; None for one per tile (spends the budget at the default
            dwell).
        score_every: the analyst's report is made and scored after every k-th step (k
            divides the steps; see :func:`~stemjax.worlds.stemgym.agents.run_episode`).
        worlds_per_chunk: worlds per compiled call and per chunk file (1: the episodes of
            one world under ``vmap``, the world shared, which is the fastest on CPUs).
        seed: seed of the episode keys.
        world_seed: seed of the world keys.
        plain_analyst, strong_analyst: the analysts of the verdict (paper: none and CNN).
        n_bootstrap: bootstrap resamples.
        tost_margin: equivalence margin of the TOST tests, DEC-AUC units (> 0).
        alpha: family-wise significance level.
        batch_sizes: episode batch sizes at which to measure episodes per second (one world;
            empty: skip).
        throughput_agent: the agent timed at ``batch_sizes``.
        curve_points: dose fractions at which the mean DEC curves are drawn.
    """

    agents: tuple[str, ...] = DEFAULT_AGENTS
    materials: tuple[str, ...] = MATERIALS
    difficulties: tuple[str, ...] = DIFFICULTIES
    size: str = "default"
    episodes: int = 30
    steps: int | None = None
    score_every: int = 8
    worlds_per_chunk: int = 1
    seed: int = 0
    world_seed: int = 0
    plain_analyst: str = "none"
    strong_analyst: str = "cnn"
    n_bootstrap: int = 2000
    tost_margin: float = 0.02
    alpha: float = 0.05
    batch_sizes: tuple[int, ...] = (1, 10, 30)
    throughput_agent: str = "raster+cnn"
    curve_points: int = 51

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BenchmarkConfig:
        d = json.loads(text)
        for name in ("agents", "materials", "difficulties", "batch_sizes"):
            d[name] = tuple(d[name])
        return cls(**d)


PRESETS = {
    # the whole grid: 6 agents × 15 worlds × 4 tasks × 30 episodes (benchmarks/stemgym.py)
    "stemgym": BenchmarkConfig(),
    # a smoke test of the whole pipeline (tests, CI): tiny worlds, stand-in analysts (the
    # perfect analyst of the tiles seen against one that reports nothing)
    "stemgym-quick": BenchmarkConfig(
        agents=("raster+empty", "raster+oracle", "gp-ucb+oracle"),
        materials=("SrTiO3", "GaN"), difficulties=("easy",), size="tiny", episodes=3,
        score_every=1, worlds_per_chunk=2, plain_analyst="empty", strong_analyst="oracle",
        n_bootstrap=200, batch_sizes=(3,), throughput_agent="raster+oracle", curve_points=11,
    ),
}  # fmt: skip
"""``stemjax sweep --preset NAME`` for the STEMGym benchmark."""


# --------------------------------------------------------------------------------------------
# configuration


def _split(name: str) -> tuple[str, str]:
    navigator, _, analyst = name.partition("+")
    return navigator, analyst


def _int_at_least(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")


def validate(config: BenchmarkConfig, out=None, analysts=None) -> None:
    """Raise ValueError for a configuration that cannot run, before any work starts.

    Checks agent, analyst, material, difficulty and size names, the counts, the margins and
    the output folder (a folder holding another configuration is refused).
    """
    if not isinstance(config, BenchmarkConfig):
        raise ValueError(f"config must be a BenchmarkConfig; got {type(config).__name__}")
    if not config.agents or len(set(config.agents)) != len(config.agents):
        raise ValueError(f"agents must name at least one agent, each once; got {config.agents}")
    names = set(analysts) if analysts is not None else None
    for agent in config.agents:
        navigator, analyst = _split(agent)
        if navigator not in NAVIGATORS or not analyst:
            raise ValueError(f"agents must be 'navigator+analyst' with navigator in "
                             f"{tuple(NAVIGATORS)}; got {agent!r}")  # fmt: skip
        if names is not None and analyst not in names:
            raise ValueError(f"agent {agent!r} needs analyst {analyst!r}; available: "
                             f"{sorted(names)}")  # fmt: skip
    for name, values, allowed in (("materials", config.materials, MATERIALS),
                                  ("difficulties", config.difficulties, DIFFICULTIES)):  # fmt: skip
        bad = [v for v in values if v not in allowed]
        if not values or bad or len(set(values)) != len(values):
            raise ValueError(f"{name} must be distinct names among {allowed}; got {values}")
    if config.size not in SIZES:
        raise ValueError(f"size must be one of {tuple(SIZES)}; got {config.size!r}")
    _int_at_least("episodes", config.episodes, 2)
    if config.steps is not None:
        _int_at_least("steps", config.steps, 1)
    _int_at_least("score_every", config.score_every, 1)
    n_steps = config.steps or SIZES[config.size].tiles ** 2
    if n_steps % config.score_every:
        raise ValueError(f"score_every must divide the {n_steps} steps per episode; got "
                         f"{config.score_every}")  # fmt: skip
    for name in ("worlds_per_chunk", "n_bootstrap", "curve_points"):
        _int_at_least(name, getattr(config, name), 2 if name == "curve_points" else 1)
    for name in ("seed", "world_seed"):
        _int_at_least(name, getattr(config, name), 0)
    if not (isinstance(config.tost_margin, (int, float)) and math.isfinite(config.tost_margin)
            and config.tost_margin > 0):  # fmt: skip
        raise ValueError(f"tost_margin must be a number > 0 (DEC-AUC units); got "
                         f"{config.tost_margin!r}")  # fmt: skip
    if not (isinstance(config.alpha, float) and 0.0 < config.alpha < 0.5):
        raise ValueError(f"alpha must be a number in (0, 0.5); got {config.alpha!r}")
    for b in config.batch_sizes:
        _int_at_least("batch_sizes entries", b, 1)
    if config.batch_sizes and config.throughput_agent not in config.agents:
        raise ValueError(f"throughput_agent must be one of the agents {config.agents}; got "
                         f"{config.throughput_agent!r}")  # fmt: skip
    if out is not None:
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise ValueError(f"out must be a folder; {out} is a file")
        saved = out / "config.json"
        if saved.exists():
            old = BenchmarkConfig.from_json(saved.read_text())
            if old != config:
                diff = {k: (getattr(old, k), getattr(config, k))
                        for k in dataclasses.asdict(config)
                        if getattr(old, k) != getattr(config, k)}  # fmt: skip
                raise ValueError(f"out {out} holds a benchmark with another configuration "
                                 f"(saved vs requested: {diff}); choose another folder or "
                                 f"delete it")  # fmt: skip


def default_analysts(names=None) -> dict:
    """The analysts by name: ``oracle`` and ``empty`` (stand-ins, always), ``none`` (the
    peak finder) and ``cnn`` (the U-Net) from :mod:`stemjax.worlds.stemgym.analysts`.

    Args:
        names: the analysts needed (default all); the CNN's weights are read only if needed.

    Raises:
        ValueError: when a needed real analyst is not available.
    """
    wanted = set(names) if names is not None else {"none", "cnn", "oracle", "empty"}
    found = {"oracle": oracle_analyst, "empty": empty_analyst}
    real = wanted & {"none", "cnn"}
    if real:
        try:
            from stemjax.worlds.stemgym import analysts as real_analysts
        except ImportError as error:
            raise ValueError(f"analysts {sorted(real)} need stemjax.worlds.stemgym.analysts, "
                             f"which could not be imported ({error}); use the stand-ins "
                             f"'oracle' and 'empty' or pass analysts=") from error  # fmt: skip
        if "none" in real:
            found["none"] = real_analysts.peak_analyst
        if "cnn" in real:
            found["cnn"] = real_analysts.load_unet_analyst()
    return {k: v for k, v in found.items() if k in wanted}


def make_agents(config: BenchmarkConfig, analysts: dict) -> dict[str, Agent]:
    """{name: Agent} for ``config.agents``."""
    agents = {}
    for name in config.agents:
        navigator, analyst = _split(name)
        agents[name] = Agent(name, NAVIGATORS[navigator](), analysts[analyst])
    return agents


def world_list(config: BenchmarkConfig) -> list[tuple[int, str, str]]:
    """(global index, material, difficulty) of the worlds run, material-major."""
    order = [(m, d) for m in MATERIALS for d in DIFFICULTIES]
    return [(i, m, d) for i, (m, d) in enumerate(order)
            if m in config.materials and d in config.difficulties]  # fmt: skip


_WORLD_CACHE: dict = {}


def _world(config: BenchmarkConfig, index: int, material: str, difficulty: str):
    key = (config.world_seed, index, material, difficulty, config.size)
    if key not in _WORLD_CACHE:
        world_key = jax.random.fold_in(jax.random.key(config.world_seed), index)
        _WORLD_CACHE[key] = make_world(world_key, material, difficulty, config.size)
    return _WORLD_CACHE[key]


def episode_keys(seed: int, world_index: int, episodes: int):
    """(episodes,) keys ``fold_in(fold_in(key(seed), world_index), e)``, e = 0 … episodes − 1."""
    base = jax.random.fold_in(jax.random.key(seed), world_index)
    return jax.vmap(lambda e: jax.random.fold_in(base, e))(jnp.arange(episodes))


def _chunks(config: BenchmarkConfig) -> list[list[tuple[int, str, str]]]:
    worlds = world_list(config)
    n = config.worlds_per_chunk
    return [worlds[i : i + n] for i in range(0, len(worlds), n)]


def _chunk_path(out: Path, agent: str, index: int) -> Path:
    return out / "chunks" / agent.replace("+", "_") / f"{index:03d}.npz"


def _fingerprint(analyst) -> str:
    """SHA-256 of an analyst: its structure, settings and weights (stable across runs)."""
    leaves, treedef = jax.tree.flatten(analyst)
    text = str(treedef) + repr(analyst)  # the repr shows static settings
    digest = hashlib.sha256(re.sub(r" at 0x[0-9a-f]+", "", text).encode())
    for leaf in leaves:
        if isinstance(leaf, (jax.Array, np.ndarray, np.generic)):
            digest.update(np.asarray(leaf).tobytes())
        elif callable(leaf):
            digest.update(f"{getattr(leaf, '__module__', '')}."
                          f"{getattr(leaf, '__qualname__', type(leaf).__name__)}".encode())
        else:
            digest.update(re.sub(r" at 0x[0-9a-f]+", "", repr(leaf)).encode())
    return digest.hexdigest()


def _check_analysts(out: Path, config: BenchmarkConfig, analysts: dict) -> None:
    """Record the analysts' fingerprints in ``out``; refuse to resume with other ones."""
    names = sorted({_split(a)[1] for a in config.agents})
    prints = {name: _fingerprint(analysts[name]) for name in names}
    path = out / "analysts.json"
    if path.exists():
        saved = json.loads(path.read_text())
        changed = sorted(n for n in names if saved.get(n) != prints[n])
        if changed:
            raise ValueError(f"out {out} holds chunks made with other analysts {changed} (other "
                             f"weights or settings); choose another folder or delete it")
    path.write_text(json.dumps(prints, indent=1))


def _save_atomic(path: Path, arrays: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# running


def run_benchmark(config: BenchmarkConfig, out, *, analysts: dict | None = None,
                  progress: bool = True, max_chunks: int | None = None) -> dict | None:  # fmt: skip
    """Run (or resume) the benchmark into the folder ``out`` and write its report.

    Args:
        config: what to run.
        out: output folder (created; must hold no other configuration).
        analysts: {name: analyst} for the agents' analysts (default :func:`default_analysts`).
            The configuration records only the names: resume with the same analysts.
        progress: print one line per chunk on stderr.
        max_chunks: stop after computing this many new chunks (to test resuming); the
            benchmark is then incomplete and None is returned.

    Returns:
        The summary (:func:`summarise`, plus timings), also written to ``<out>/results.json``.
    """
    started = time.perf_counter()
    validate(config, out)
    needed = sorted({_split(a)[1] for a in config.agents})
    analysts = default_analysts(needed) if analysts is None else analysts
    validate(config, out, analysts)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_analysts(out, config, analysts)
    (out / "config.json").write_text(config.to_json())
    agents = make_agents(config, analysts)
    chunks = _chunks(config)
    todo = [(a, i) for a in config.agents for i in range(len(chunks))
            if not _chunk_path(out, a, i).exists()]  # fmt: skip
    t0 = time.perf_counter()
    for index, material, difficulty in world_list(config):
        if todo:
            _world(config, index, material, difficulty)
    build_s = time.perf_counter() - t0
    compiled: set = set()
    for done, (name, i) in enumerate(todo):
        if max_chunks is not None and done >= max_chunks:
            return None
        group = chunks[i]
        keys = jnp.stack([episode_keys(config.seed, w[0], config.episodes) for w in group])
        shape = (name, len(group))
        begin = time.perf_counter()
        if len(group) == 1:  # the world shared by the episodes (not batched): faster
            episodes = run_episodes(keys[0], agents[name], _world(config, *group[0]),
                                    config.steps, score_every=config.score_every)  # fmt: skip
            episodes = jax.tree.map(lambda a: a[None], episodes)
        else:
            worlds = stack_worlds([_world(config, *w) for w in group])
            episodes = run_grid(keys, agents[name], worlds, config.steps,
                                score_every=config.score_every)  # fmt: skip
        episodes = jax.block_until_ready(episodes)
        seconds = time.perf_counter() - begin
        arrays = {f: np.asarray(getattr(episodes, f)) for f in
                  ("dec_auc", "dose_fraction", "scores", "valid", "tiles", "dwell_us", "modes",
                   "coverage")}  # fmt: skip
        arrays["world_index"] = np.asarray([w[0] for w in group])
        arrays["seconds"] = np.asarray(seconds)
        arrays["includes_compile"] = np.asarray(shape not in compiled)
        compiled.add(shape)
        _save_atomic(_chunk_path(out, name, i), arrays)
        if progress:
            last = "" if len(group) == 1 else f" … {group[-1][1]}-{group[-1][2]}"
            print(f"stemgym benchmark: {name} on {group[0][1]}-{group[0][2]}{last} "
                  f"({len(group) * config.episodes} episodes) {seconds:.1f} s "
                  f"[{done + 1}/{len(todo)}]", file=sys.stderr, flush=True)  # fmt: skip
    results = gather(out, config)
    throughput = _throughput(config, agents, out)
    summary = summarise(results, config)
    summary["per_episode_dec_auc"] = {a: np.round(results["dec_auc"][k], 6).tolist()
                                      for k, a in enumerate(config.agents)}  # fmt: skip
    np.savez(out / "episodes.npz", **{k: v for k, v in results.items()},
             agents=np.asarray(config.agents), tasks=np.asarray(TASKS))  # fmt: skip
    write_figures(out / "figures", results, config)
    # every invocation on this folder (a resumed benchmark took several)
    path = out / "runs.json"
    runs = json.loads(path.read_text()) if path.exists() else []
    runs.append({"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "new_chunks": len(todo),
                 "world_build_s": build_s, "seconds": time.perf_counter() - started})  # fmt: skip
    path.write_text(json.dumps(runs, indent=1))
    summary["timing"] = _timing(config, results, throughput, runs)
    (out / "results.json").write_text(json.dumps(summary, indent=1, default=_json_default))
    (out / "results.md").write_text(write_report(summary))
    return summary


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def gather(out, config: BenchmarkConfig) -> dict[str, np.ndarray]:
    """All chunks of a finished benchmark: {field: (agents, worlds, episodes, ...)}, plus
    ``world_index`` (W,), ``seconds`` (agents, chunks) and ``includes_compile``."""
    out = Path(out)
    n = len(_chunks(config))
    fields = ("dec_auc", "dose_fraction", "scores", "valid", "tiles", "dwell_us", "modes",
              "coverage")  # fmt: skip
    per_agent = {f: [] for f in fields}
    seconds, compile_flags, index = [], [], None
    for agent in config.agents:
        parts = []
        for i in range(n):
            path = _chunk_path(out, agent, i)
            if not path.exists():
                raise ValueError(f"chunk {i} of agent {agent!r} is missing ({path}); run the "
                                 f"benchmark to completion first")  # fmt: skip
            with np.load(path, allow_pickle=False) as data:
                parts.append({k: data[k] for k in data.files})
        for f in fields:
            per_agent[f].append(np.concatenate([p[f] for p in parts]))
        seconds.append([float(p["seconds"]) for p in parts])
        compile_flags.append([bool(p["includes_compile"]) for p in parts])
        index = np.concatenate([p["world_index"] for p in parts])
    results = {f: np.stack(v) for f, v in per_agent.items()}
    results["world_index"] = index
    results["seconds"] = np.asarray(seconds)
    results["includes_compile"] = np.asarray(compile_flags)
    return results


def measure_throughput(agent: Agent, world, batch_sizes, *, steps=None, score_every: int = 1,
                       seed: int = 0) -> list[dict]:  # fmt: skip
    """Episodes per second of ``agent`` on one world at each batch size (vmapped episodes).

    Each batch size is compiled by a first call and timed on a second one with other keys.

    Returns:
        [{"batch", "compile_s", "seconds", "episodes_per_s", "episode_steps_per_s"}].
    """
    rows = []
    n_steps = world.n_tiles if steps is None else steps
    for b in batch_sizes:
        keys = episode_keys(seed, 10_000, 2 * b)
        begin = time.perf_counter()
        jax.block_until_ready(run_episodes(keys[:b], agent, world, steps, score_every=score_every))
        first = time.perf_counter() - begin
        begin = time.perf_counter()
        jax.block_until_ready(run_episodes(keys[b:], agent, world, steps, score_every=score_every))
        seconds = time.perf_counter() - begin
        rows.append({"batch": int(b), "compile_s": max(first - seconds, 0.0),
                     "seconds": seconds, "episodes_per_s": b / seconds,
                     "episode_steps_per_s": b * n_steps / seconds})  # fmt: skip
    return rows


def _throughput(config: BenchmarkConfig, agents: dict, out: Path) -> list[dict]:
    path = out / "throughput.json"
    if path.exists():
        return json.loads(path.read_text())
    if not config.batch_sizes:
        return []
    first = world_list(config)[0]
    rows = measure_throughput(agents[config.throughput_agent], _world(config, *first),
                              config.batch_sizes, steps=config.steps,
                              score_every=config.score_every, seed=config.seed)  # fmt: skip
    for row in rows:
        row["agent"] = config.throughput_agent
    path.write_text(json.dumps(rows, indent=1))
    return rows


def _timing(config, results, throughput, runs) -> dict:
    working = [r for r in runs if r["new_chunks"]] or runs[-1:]  # runs that computed chunks
    seconds, flags = results["seconds"], results["includes_compile"]
    sizes = [len(c) * config.episodes for c in _chunks(config)]
    agents = []
    for k, name in enumerate(config.agents):
        warm = [(s, n) for s, n, f in zip(seconds[k], sizes, flags[k]) if not f]
        agents.append({
            "agent": name, "seconds": float(np.sum(seconds[k])),
            "episodes": int(np.sum(sizes)),
            "episodes_per_s_compiled": (sum(n for _, n in warm) / sum(s for s, _ in warm)
                                        if warm else None),
            "chunk_batch": int(max(sizes)),
        })  # fmt: skip
    n_steps = config.steps or SIZES[config.size].tiles ** 2
    return {
        "grid_s": float(np.sum(seconds)),
        "world_build_s": float(sum(r["world_build_s"] for r in working)),
        "total_s": float(sum(r["seconds"] for r in working)), "runs": runs,
        "rollouts": int(len(config.agents) * len(world_list(config)) * config.episodes),
        "scored_episodes": int(len(config.agents) * len(world_list(config)) * config.episodes
                               * len(TASKS)),
        "steps_per_episode": int(n_steps), "agents": agents, "throughput": throughput,
        "machine": {"platform": platform.platform(), "processor": platform.machine(),
                    "cpus": os.cpu_count(), "devices": [str(d) for d in jax.devices()],
                    "jax": jax.__version__},
    }  # fmt: skip


# --------------------------------------------------------------------------------------------
# statistics


def _ci(values, config, seed=0) -> dict:
    mean, low, high = bootstrap_mean_ci(values, n_resamples=config.n_bootstrap, seed=seed)
    return {"mean": float(mean), "low": float(low), "high": float(high), "n": int(len(values))}


def _world_names(config) -> list[str]:
    return [f"{m}-{d}" for _, m, d in world_list(config)]


def summarise(results: dict, config: BenchmarkConfig) -> dict:
    """The statistics of a finished benchmark (see the module docstring).

    Args:
        results: from :func:`gather` (``dec_auc`` (A, W, E, 4)).
        config: its configuration.

    Returns:
        {"config", "agents", "worlds", "tasks", "table", "by_task", "overall", "wilcoxon",
        "tost", "analyst_effect", "verdict"}: ``table`` rows (agent, world, task, mean, low,
        high, n) per agent × world × task; ``wilcoxon`` rows per comparison and scope
        ("cell", "task", "overall") with raw and Bonferroni p-values; ``tost`` rows per
        comparison and scope ("task", "overall").
    """
    auc = np.asarray(results["dec_auc"], float)  # (A, W, E, 4)
    agents, worlds, tasks = list(config.agents), _world_names(config), list(TASKS)
    a_n, w_n, e_n, _ = auc.shape
    if (a_n, w_n, e_n) != (len(agents), len(worlds), config.episodes):
        raise ValueError(f"results['dec_auc'] must have shape (agents, worlds, episodes, 4) = "
                         f"({len(agents)}, {len(worlds)}, {config.episodes}, 4); got "
                         f"{auc.shape}")  # fmt: skip
    table = [{"agent": a, "world": w, "task": t, **_ci(auc[i, j, :, k], config)}
             for i, a in enumerate(agents) for j, w in enumerate(worlds)
             for k, t in enumerate(tasks)]  # fmt: skip
    by_task = [{"agent": a, "task": t, **_ci(auc[i, :, :, k].reshape(-1), config)}
               for i, a in enumerate(agents) for k, t in enumerate(tasks)]  # fmt: skip
    overall = [{"agent": a, **_ci(auc[i].mean(axis=-1).reshape(-1), config)}
               for i, a in enumerate(agents)]  # fmt: skip
    if "coverage" in results:  # fraction of the tiles observed by the end of an episode
        for row, coverage in zip(overall, np.asarray(results["coverage"], float)):
            row["coverage"] = float(coverage.mean())

    # navigator vs raster under the same analyst
    pairs = []
    for name in agents:
        navigator, analyst = _split(name)
        baseline = f"{BASELINE}+{analyst}"
        if navigator != BASELINE and baseline in agents:
            pairs.append((name, baseline))
    wilcoxon, tost = [], []
    for scope in ("cell", "task", "overall"):
        rows = []
        for name, baseline in pairs:
            a, b = auc[agents.index(name)], auc[agents.index(baseline)]
            if scope == "cell":
                units = [(worlds[j], tasks[k], a[j, :, k], b[j, :, k])
                         for j in range(w_n) for k in range(len(tasks))]  # fmt: skip
            elif scope == "task":
                units = [(None, tasks[k], a[:, :, k].reshape(-1), b[:, :, k].reshape(-1))
                         for k in range(len(tasks))]  # fmt: skip
            else:
                units = [(None, None, a.mean(-1).reshape(-1), b.mean(-1).reshape(-1))]
            for world, task, x, y in units:
                result = paired_wilcoxon(x, y)
                rows.append({"agent": name, "baseline": baseline, "analyst": _split(name)[1],
                             "navigator": _split(name)[0], "scope": scope, "world": world,
                             "task": task, "n": int(x.size),
                             "mean_difference": float(np.mean(x - y)),
                             "median_difference": result.median_difference,
                             "statistic": result.statistic, "p_value": result.p_value})  # fmt: skip
                if scope != "cell":
                    t = tost_paired(x, y, config.tost_margin, alpha=config.alpha)
                    tost.append({"agent": name, "baseline": baseline, "scope": scope,
                                 "task": task, "margin": config.tost_margin,
                                 "mean_difference": t.mean_difference, "ci_low": t.ci_low,
                                 "ci_high": t.ci_high, "p_value": t.p_value,
                                 "equivalent": t.equivalent})  # fmt: skip
        if rows:
            adjusted = bonferroni([r["p_value"] for r in rows])
            for r, p in zip(rows, adjusted):
                r["p_bonferroni"] = float(p)
                r["tests_in_family"] = len(rows)
                r["significant"] = bool(p < config.alpha)
        wilcoxon += rows

    # the analyst effect: the same navigator with the strong and with the plain analyst
    effect = []
    plain, strong = config.plain_analyst, config.strong_analyst
    for navigator in NAVIGATORS:
        p_name, s_name = f"{navigator}+{plain}", f"{navigator}+{strong}"
        if p_name in agents and s_name in agents:
            x = auc[agents.index(s_name)].mean(-1).reshape(-1)
            y = auc[agents.index(p_name)].mean(-1).reshape(-1)
            result = paired_wilcoxon(x, y)
            effect.append({"navigator": navigator, "plain": p_name, "strong": s_name,
                           "mean_plain": float(y.mean()), "mean_strong": float(x.mean()),
                           "ratio": float(x.mean() / y.mean()) if y.mean() > 0 else None,
                           "mean_difference": float(np.mean(x - y)),
                           "p_value": result.p_value})  # fmt: skip
    return {
        "config": dataclasses.asdict(config), "agents": agents, "worlds": worlds,
        "tasks": tasks, "table": table, "by_task": by_task, "overall": overall,
        "wilcoxon": wilcoxon, "tost": tost, "analyst_effect": effect,
        "verdict": _verdict(config, agents, effect, wilcoxon, tost),
    }


def _verdict(config, agents, effect, wilcoxon, tost) -> dict:
    """Whether the analyst, not the navigator, decides the DEC-AUC (paper's finding)."""
    plain, strong = config.plain_analyst, config.strong_analyst
    raster = next((e for e in effect if e["navigator"] == BASELINE), None)
    if raster is None:
        return {"holds": None, "text": f"needs agents {BASELINE}+{plain} and "
                f"{BASELINE}+{strong}; not both run"}  # fmt: skip
    under = [r for r in wilcoxon if r["scope"] == "overall" and r["analyst"] == strong]
    better = [r["agent"] for r in under if r["significant"] and r["mean_difference"] > 0]
    worse = [f"{r['agent']} ({r['mean_difference']:+.3f})" for r in under
             if r["significant"] and r["mean_difference"] < 0]  # fmt: skip
    navigator_effect = max((abs(r["mean_difference"]) for r in under), default=0.0)
    analyst_gain = raster["mean_difference"]
    analyst_significant = raster["p_value"] < config.alpha and analyst_gain > 0
    equivalent = [r["agent"] for r in tost if r["scope"] == "overall" and r["equivalent"]
                  and r["agent"] in {u["agent"] for u in under}]  # fmt: skip
    holds = bool(analyst_significant and not better and analyst_gain > navigator_effect)
    ratio = raster["ratio"]
    ratio_text = "undefined (plain analyst scores 0)" if ratio is None else f"{ratio:.2f}"
    text = (
        f"The analyst-over-navigator finding {'HOLDS' if holds else 'DOES NOT HOLD'} in "
        f"stemjax's worlds: {BASELINE}+{strong} / {BASELINE}+{plain} DEC-AUC = "
        f"{raster['mean_strong']:.3f} / {raster['mean_plain']:.3f} = {ratio_text} (paper: "
        f"0.287 / 0.052 = 5.5); analyst effect {analyst_gain:+.3f} (Wilcoxon p = "
        f"{raster['p_value']:.2g}); largest navigator effect under {strong} "
        f"{navigator_effect:.3f}; navigators significantly better than {BASELINE} under "
        f"{strong} after Bonferroni: {', '.join(better) or 'none'}; significantly worse: "
        f"{', '.join(worse) or 'none'}; equivalent to {BASELINE}+{strong} within "
        f"±{config.tost_margin} (TOST): {', '.join(equivalent) or 'none'} of {len(under)}."
    )
    return {"holds": holds, "ratio": ratio, "analyst_gain": analyst_gain,
            "analyst_p_value": raster["p_value"], "navigator_effect": navigator_effect,
            "better_than_raster": better, "worse_than_raster": worse,
            "equivalent_to_raster": equivalent, "text": text}  # fmt: skip


# --------------------------------------------------------------------------------------------
# report and figures


def _fmt(row) -> str:
    return f"{row['mean']:.3f} [{row['low']:.3f}, {row['high']:.3f}]"


def _p(p) -> str:
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def write_report(summary: dict) -> str:
    """The markdown report of a :func:`run_benchmark` summary."""
    cfg, agents, worlds, tasks = (summary[k] for k in ("config", "agents", "worlds", "tasks"))
    timing = summary.get("timing")
    lines = ["# STEMGym dose-budget benchmark", ""]
    lines += [f"{len(agents)} agents × {len(worlds)} worlds × {len(tasks)} tasks × "
              f"{cfg['episodes']} episodes ({cfg['size']} worlds"
              + (f", {timing['steps_per_episode']} steps per episode" if timing else "")
              + "). DEC-AUC: area under the task score against the dose spent as a fraction "
              "of the budget (trapezoid rule on [0, 1], the last score held to the full "
              "budget); means with percentile-bootstrap 95 % intervals "
              f"({cfg['n_bootstrap']} resamples). Each rollout is scored on all four tasks "
              "(no navigator reads the task). Episode e of world w uses the same keys under "
              "every agent (paired tests).", ""]  # fmt: skip
    lines += ["## Verdict", "", summary["verdict"]["text"], ""]
    cover = all("coverage" in row for row in summary["overall"])
    lines += ["## DEC-AUC per agent", "", "| agent | all tasks | " + " | ".join(tasks) + " |"
              + (" coverage |" if cover else ""),
              "|---|---|" + "---|" * (len(tasks) + cover)]  # fmt: skip
    by_task = {(r["agent"], r["task"]): r for r in summary["by_task"]}
    for row in summary["overall"]:
        a = row["agent"]
        lines.append(f"| {a} | {_fmt(row)} | "
                     + " | ".join(_fmt(by_task[(a, t)]) for t in tasks) + " |"
                     + (f" {row['coverage']:.2f} |" if cover else ""))  # fmt: skip
    lines += ["", "Per agent: the mean over worlds × episodes (n = "
              f"{len(worlds) * cfg['episodes']}) of each episode's DEC-AUC (all tasks: its "
              "mean over the four tasks)"
              + ("; coverage: the mean fraction of the tiles observed by the end" if cover
                 else "") + ".", ""]  # fmt: skip
    if summary["analyst_effect"]:
        lines += ["## Analyst effect", "", "| navigator | plain | strong | ratio | "
                  "difference | Wilcoxon p |", "|---|---|---|---|---|---|"]  # fmt: skip
        for e in summary["analyst_effect"]:
            ratio = "–" if e["ratio"] is None else f"{e['ratio']:.2f}"
            lines.append(f"| {e['navigator']} | {e['mean_plain']:.3f} | {e['mean_strong']:.3f} "
                         f"| {ratio} | {e['mean_difference']:+.3f} | {_p(e['p_value'])} |")
        lines.append("")
    tests = [r for r in summary["wilcoxon"] if r["scope"] != "cell"]
    if tests:
        lines += ["## Navigators against raster under the same analyst", "",
                  "Paired Wilcoxon signed-rank tests, Bonferroni-corrected within each family "
                  "(overall: one test per navigator × analyst; per task: × 4 tasks), and TOST "
                  f"equivalence (two one-sided paired t-tests, margin ±{cfg['tost_margin']} "
                  f"DEC-AUC, α = {cfg['alpha']}; 90 % interval of the difference).", "",
                  "| agent | vs | task | n | mean diff | Wilcoxon p | Bonferroni p | "
                  "TOST 90 % CI | TOST p | equivalent |",
                  "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        tost = {(r["agent"], r["scope"], r["task"]): r for r in summary["tost"]}
        for r in tests:
            t = tost[(r["agent"], r["scope"], r["task"])]
            lines.append(f"| {r['agent']} | {r['baseline']} | {r['task'] or 'all'} | {r['n']} | "
                         f"{r['mean_difference']:+.4f} | {_p(r['p_value'])} | "
                         f"{_p(r['p_bonferroni'])} | [{t['ci_low']:+.4f}, {t['ci_high']:+.4f}] "
                         f"| {_p(t['p_value'])} | {'yes' if t['equivalent'] else 'no'} |")
        cells = [r for r in summary["wilcoxon"] if r["scope"] == "cell"]
        lines += ["", f"Per world × task ({len(cells)} Wilcoxon tests, Bonferroni over all of "
                  f"them; n = {cfg['episodes']} each): cells where the navigator is "
                  "significantly better or worse than raster.", "",
                  "| agent | vs | better | worse | not significant | better cells |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for name in dict.fromkeys(r["agent"] for r in cells):
            mine = [r for r in cells if r["agent"] == name]
            up = [r for r in mine if r["significant"] and r["mean_difference"] > 0]
            down = [r for r in mine if r["significant"] and r["mean_difference"] < 0]
            where = ", ".join(f"{r['world']} {r['task']} ({r['mean_difference']:+.3f})"
                              for r in up) or "–"  # fmt: skip
            lines.append(f"| {name} | {mine[0]['baseline']} | {len(up)} | {len(down)} | "
                         f"{len(mine) - len(up) - len(down)} | {where} |")
        lines.append("")
    if timing:
        n_working = sum(1 for r in timing["runs"] if r["new_chunks"])
        lines += ["## Time", "",
                  f"Grid: {timing['grid_s']:.0f} s for {timing['rollouts']} rollouts "
                  f"({timing['scored_episodes']} agent × world × task × episode scores), "
                  f"{timing['world_build_s']:.0f} s to build the worlds, "
                  f"{timing['total_s']:.0f} s in all"
                  + (f" over {n_working} resumed runs" if n_working > 1 else "") + " on "
                  f"{timing['machine']['cpus']} CPUs ({timing['machine']['devices'][0]}, "
                  f"jax {timing['machine']['jax']}). Chunk times include one compilation per "
                  "agent.", "", "| agent | seconds | episodes | episodes/s (compiled) | batch |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for a in timing["agents"]:
            rate = a["episodes_per_s_compiled"]
            lines.append(f"| {a['agent']} | {a['seconds']:.1f} | {a['episodes']} | "
                         f"{'–' if rate is None else f'{rate:.2f}'} | {a['chunk_batch']} |")
        if timing["throughput"]:
            lines += ["", f"Episodes per second by batch size ({timing['throughput'][0]['agent']}"
                      ", one world, vmapped episodes, compiled):", "",
                      "| batch | seconds | episodes/s | episode-steps/s | compile s |",
                      "|---|---|---|---|---|"]  # fmt: skip
            for r in timing["throughput"]:
                lines.append(f"| {r['batch']} | {r['seconds']:.2f} | {r['episodes_per_s']:.2f} "
                             f"| {r['episode_steps_per_s']:.0f} | {r['compile_s']:.1f} |")
        lines.append("")
    lines += ["## DEC-AUC per agent, world and task", ""]
    table = {(r["agent"], r["world"], r["task"]): r for r in summary["table"]}
    for t in tasks:
        lines += [f"### {t}", "", "| world | " + " | ".join(agents) + " |",
                  "|---|" + "---|" * len(agents)]  # fmt: skip
        for w in worlds:
            lines.append(f"| {w} | " + " | ".join(_fmt(table[(a, w, t)]) for a in agents) + " |")
        lines.append("")
    return "\n".join(lines)


def write_figures(folder, results: dict, config: BenchmarkConfig) -> list[Path]:
    """``dec_curves.png`` (mean DEC curve per agent and task with 95 % bands),
    ``dec_auc_by_agent.png`` (mean DEC-AUC per agent and task with 95 % intervals) and
    ``dec_auc_by_world.png`` (mean over tasks, agent × world)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stemjax.plots import plot_metric_curves

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    agents, tasks = list(config.agents), list(TASKS)
    grid = jnp.linspace(0.0, 1.0, config.curve_points)
    curve = jax.jit(jax.vmap(jax.vmap(dose_efficiency_curve, in_axes=(None, 1, None, None)),
                             in_axes=(0, 0, None, 0)))  # fmt: skip
    dose = results["dose_fraction"].reshape(len(agents), -1, results["dose_fraction"].shape[-1])
    scores = results["scores"].reshape(len(agents), -1, *results["scores"].shape[-2:])
    valid = results["valid"].reshape(len(agents), -1, results["valid"].shape[-1])
    curves = np.stack([np.asarray(curve(dose[i], scores[i], grid, valid[i]))
                       for i in range(len(agents))])  # (A, N, 4, G)  # fmt: skip
    paths = []
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), sharey=True)
    for k, (task, ax) in enumerate(zip(tasks, np.atleast_1d(axes))):
        plot_metric_curves({a: curves[i, :, k] for i, a in enumerate(agents)},
                           steps=np.asarray(grid), ylabel="task score", ax=ax)  # fmt: skip
        ax.set_xlabel("dose / budget")
        ax.set_title(task)
        if k:
            ax.get_legend().remove()
    fig.tight_layout()
    paths.append(folder / "dec_curves.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    auc = np.asarray(results["dec_auc"], float)  # (A, W, E, 4)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(agents) * len(tasks) / 3, 3.8))
    width = 0.8 / len(agents)
    for i, a in enumerate(agents):
        stats = [bootstrap_mean_ci(auc[i, :, :, k].reshape(-1), n_resamples=config.n_bootstrap)
                 for k in range(len(tasks))]  # fmt: skip
        mean = np.array([float(s[0]) for s in stats])
        err = np.array([[float(s[0] - s[1]) for s in stats], [float(s[2] - s[0]) for s in stats]])
        ax.bar(np.arange(len(tasks)) + (i - (len(agents) - 1) / 2) * width, mean, width,
               yerr=err, capsize=2, label=a)  # fmt: skip
    ax.set_xticks(np.arange(len(tasks)), tasks)
    ax.set_ylabel("DEC-AUC (mean, 95 % CI)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    paths.append(folder / "dec_auc_by_agent.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    worlds = _world_names(config)
    means = auc.mean(axis=(2, 3))  # (A, W)
    fig, ax = plt.subplots(figsize=(1.5 + 0.45 * len(worlds), 1.2 + 0.35 * len(agents)))
    image = ax.imshow(means, cmap="viridis", vmin=0.0, aspect="auto")
    ax.set_xticks(np.arange(len(worlds)), worlds, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(np.arange(len(agents)), agents, fontsize=8)
    top = max(float(means.max()), 1e-9)
    for (i, j), v in np.ndenumerate(means):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                color="k" if v > 0.6 * top else "w")  # fmt: skip
    fig.colorbar(image, ax=ax, label="DEC-AUC, mean over tasks")
    fig.tight_layout()
    paths.append(folder / "dec_auc_by_world.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths
