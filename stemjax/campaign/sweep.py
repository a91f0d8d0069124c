"""Sweeps: many campaigns × policies, in chunks, sharded over devices, resumable.

A sweep runs ``campaigns`` campaigns of ``steps`` steps for each policy on one world (or on a
new simulated world per campaign). Campaign c uses the key ``fold_in(key(seed), c)`` under
every policy, so policies are compared on the same seed points and worlds (paired).

Campaigns run in chunks of ``chunk``: each chunk is one compiled ``vmap`` call whose campaign
axis is sharded over all devices (``jax.sharding``), and each finished chunk is written to
``<out>/chunks/<policy>/<i>.npz`` at once (written to a temporary name, then renamed). A sweep
started again on the same folder with the same configuration skips the chunks on disk, so an
interruption loses at most the chunks in flight; a folder holding another configuration is
refused before any work starts. At the end the records are gathered into ``results.nc``
(netCDF 3, dimensions policy × campaign × step, with the configuration and versions).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import stemjax
from stemjax.campaign.engine import METRICS, MetricLabels, metric_labels, random_seeds, run_many
from stemjax.campaign.library_sweep import run_library_chunk, validate_library
from stemjax.campaign.policy import POLICY_NAMES, Surrogate, make_policy

WORLDS = ("pfm", "eels", "domains", "particles", "library")
"""World names a sweep accepts: two real data sets, two simulated structure–property families
and random particle libraries (paper 004; see :mod:`stemjax.campaign.library_sweep`)."""


@dataclass(frozen=True)
class SweepConfig:
    """What a sweep runs (saved with its results; JSON round-trip).

    Attributes:
        world: one of :data:`WORLDS`. Real worlds are shared by all campaigns; simulated ones
            are drawn anew for each campaign from its key.
        policies: names from :data:`~stemjax.campaign.policy.POLICY_NAMES`.
        campaigns: campaigns per policy.
        steps: measurements per campaign after the seeds.
        n_seeds: seed points per campaign.
        paper_seeds: start every campaign from the world's own seeds (paper 003's 10 for PFM)
            instead of ``n_seeds`` random ones per campaign.
        chunk: campaigns per compiled call (a multiple of the device count when sharding).
        surrogate: ``"gp"`` or ``"dkl"``.
        fit_steps, refit_steps, learning_rate: surrogate fitting (see ``Surrogate``).
        principal_components: the surrogate sees this many principal components of the
            inputs (0: the raw inputs; see ``Surrogate``).
        n_bins, n_clusters: coverage resolution B and K (paper 003, S2).
        feature_space: train the VAE for feature-space coverage.
        seed: root of all keys.
    """

    world: str = "pfm"
    policies: tuple[str, ...] = ("ei", "mu", "beacon")
    campaigns: int = 100
    steps: int = 300
    n_seeds: int = 10
    paper_seeds: bool = False
    chunk: int = 16
    surrogate: str = "gp"
    fit_steps: int = 100
    refit_steps: int = 10
    learning_rate: float = 0.05
    principal_components: int = 0
    n_bins: int = 20
    n_clusters: int = 20
    feature_space: bool = True
    seed: int = 0
    world_options: dict = field(default_factory=dict)

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        d["policies"] = list(self.policies)
        return json.dumps(d, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SweepConfig:
        d = json.loads(text)
        d["policies"] = tuple(d["policies"])
        return cls(**d)

    def surrogate_settings(self) -> Surrogate:
        return Surrogate(
            model=self.surrogate, fit_steps=self.fit_steps, refit_steps=self.refit_steps,
            learning_rate=self.learning_rate, principal_components=self.principal_components,
        )  # fmt: skip


def _positive_int(name: str, value) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")


def validate(config: SweepConfig, out: str | os.PathLike | None = None) -> None:
    """Raise ValueError for a configuration that cannot run, before any work starts.

    Checks names, sizes (the budget against the world's candidates), the output folder
    (writable; holding no other configuration).
    """
    if config.world not in WORLDS:
        raise ValueError(f"world must be one of {WORLDS}; got {config.world!r}")
    if not config.policies:
        raise ValueError("policies must name at least one policy; got none")
    library = config.world == "library"
    if not library:
        unknown = [p for p in config.policies if p not in POLICY_NAMES]
        if unknown:
            raise ValueError(f"policies must be among {POLICY_NAMES}; got unknown {unknown}")
    if len(set(config.policies)) != len(config.policies):
        raise ValueError(f"policies must not repeat; got {list(config.policies)}")
    for name in ("campaigns", "steps", "n_seeds", "chunk", "fit_steps", "refit_steps",
                 "n_bins", "n_clusters"):  # fmt: skip
        _positive_int(name, getattr(config, name))
    if library:
        validate_library(config)
    else:
        config.surrogate_settings()  # checks model name and learning rate
        n = candidate_count(config)
        seeds = 10 if config.paper_seeds else config.n_seeds
        if seeds + config.steps > n:
            raise ValueError(
                f"steps must be at most {n - seeds} for world {config.world!r} ({n} "
                f"candidates, {seeds} seeds); got {config.steps}"
            )
    devices = jax.device_count()
    if devices > 1 and config.chunk % devices:
        raise ValueError(
            f"chunk must be a multiple of the {devices} devices to shard campaigns; got "
            f"{config.chunk}"
        )
    if out is not None:
        _check_output(config, Path(out))


def _check_output(config: SweepConfig, out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"out must be a folder; {out} is a file")
    existing = out / "config.json"
    if existing.exists():
        saved = SweepConfig.from_json(existing.read_text())
        if saved != config:
            diff = {
                k: (getattr(saved, k), getattr(config, k))
                for k in dataclasses.asdict(config)
                if getattr(saved, k) != getattr(config, k)
            }
            raise ValueError(
                f"out {out} holds a sweep with another configuration (saved vs requested: "
                f"{diff}); choose another folder or delete it"
            )
    probe = out if out.exists() else next(p for p in out.parents if p.exists())
    if not os.access(probe, os.W_OK):
        raise ValueError(f"out {out} is not writable (no write permission on {probe})")


def candidate_count(config: SweepConfig) -> int:
    """Number of candidates of the configured world (without building it for real worlds)."""
    return int(_world_shape(config))


def _world_shape(config: SweepConfig) -> int:
    if config.world in ("pfm", "eels"):
        return _real_world(config).targets.shape[0]
    world = eqx.filter_eval_shape(_simulated_world(config), jax.random.key(0))
    return world.targets.shape[0]


def _real_world(config: SweepConfig):
    from stemjax import worlds

    loader = {"pfm": worlds.pfm_world, "eels": worlds.eels_world}[config.world]
    return loader(**config.world_options)


def _simulated_world(config: SweepConfig):
    from stemjax import worlds

    if config.world == "domains":
        make, cfg = worlds.domain_world, worlds.DomainWorldConfig(**config.world_options)
    else:
        make, cfg = worlds.particle_world, worlds.ParticleWorldConfig(**config.world_options)
    return lambda key: make(key, cfg)


def campaign_keys(seed: int, start: int, count: int):
    """Keys of campaigns start … start + count − 1 (independent of the chunking)."""
    root = jax.random.key(seed)
    return jax.vmap(lambda c: jax.random.fold_in(root, c))(jnp.arange(start, start + count))


@functools.lru_cache(maxsize=16)
def _chunk_function(config_json: str, policy_name: str, real: bool):
    """The compiled chunk of campaigns for one policy: keys (c,) [, world, labels] →
    (records {metric: (c, steps)}, seeds (c, s)). Cached on everything but the campaign count,
    so repeated and resumed sweeps reuse one compilation."""
    cfg = SweepConfig.from_json(config_json)
    policy = make_policy(policy_name, cfg.surrogate_settings())

    def chunk(keys, world=None, labels=None):
        parts = jax.vmap(lambda k: jax.random.split(k, 3))(keys)
        k_world, k_seed, k_run = parts[:, 0], parts[:, 1], parts[:, 2]
        if not real:
            world = jax.vmap(_simulated_world(cfg))(k_world)
            labels = jax.vmap(
                lambda k, w: metric_labels(k, w, n_bins=cfg.n_bins, n_clusters=cfg.n_clusters,
                                           feature_space=cfg.feature_space)
            )(k_world, world)  # fmt: skip
        seeds = None
        if not cfg.paper_seeds:
            n = world.targets.shape[-1]
            seeds = jax.vmap(lambda k: random_seeds(k, n, cfg.n_seeds))(k_seed)
        _, records = run_many(k_run, world, policy, labels, cfg.steps, seeds,
                              batched_world=not real)  # fmt: skip
        if seeds is None:
            seeds = jnp.broadcast_to(world.seeds, (keys.shape[0], world.seeds.shape[-1]))
        return records, seeds

    return eqx.filter_jit(chunk)


def _run_chunk(config: SweepConfig, policy: str, keys, world=None, labels=None):
    """One chunk of campaigns, its campaign axis sharded over all devices."""
    devices = jax.devices()
    if len(devices) > 1:
        mesh = Mesh(np.array(devices), ("campaign",))
        keys = jax.device_put(keys, NamedSharding(mesh, PartitionSpec("campaign")))
    if config.world == "library":
        return run_library_chunk(config, policy, keys)
    key_json = dataclasses.replace(config, campaigns=1, chunk=1).to_json()
    fn = _chunk_function(key_json, policy, world is not None)
    return fn(keys) if world is None else fn(keys, world, labels)


def real_world_and_labels(config: SweepConfig, out: str | os.PathLike | None = None):
    """The real world of a sweep and its coverage labels, or (None, None) for simulated worlds.

    With ``out``, the labels are stored in ``<out>/labels.npz`` the first time and read back
    afterwards, so a resumed sweep and its report use exactly the same clusters.
    """
    if config.world not in ("pfm", "eels"):
        return None, None
    world = _real_world(config)
    path = None if out is None else Path(out) / "labels.npz"
    if path is not None and path.exists():
        with np.load(path, allow_pickle=False) as z:
            labels = MetricLabels(*(jnp.asarray(z[k]) for k in ("target", "patch", "feature")),
                                  config.n_bins, config.n_clusters)  # fmt: skip
        return world, labels
    labels = metric_labels(
        jax.random.key(config.seed), world, n_bins=config.n_bins, n_clusters=config.n_clusters,
        feature_space=config.feature_space,
    )  # fmt: skip
    if path is not None:
        _save_atomic(path, {k: np.asarray(getattr(labels, k)) for k in ("target", "patch", "feature")})
    return world, labels


def _chunk_path(out: Path, policy: str, index: int) -> Path:
    return out / "chunks" / policy / f"{index:05d}.npz"


def _save_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def sweep(
    config: SweepConfig, out: str | os.PathLike, *, progress: bool = True,
    max_chunks: int | None = None,
) -> dict[str, np.ndarray] | None:  # fmt: skip
    """Run (or resume) a sweep into the folder ``out``.

    Args:
        config: what to run.
        out: output folder (created; must hold no other configuration).
        progress: show a progress bar on stderr.
        max_chunks: stop after computing this many new chunks (for tests of resuming); the
            sweep is then incomplete and ``None`` is returned.

    Returns:
        The gathered records {metric: (policies, campaigns, steps)} plus ``seeds``
        (policies, campaigns, s), also written to ``<out>/results.nc``.
    """
    out = Path(out)
    validate(config, out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(config.to_json())
    n_chunks = -(-config.campaigns // config.chunk)
    todo = [
        (i, p) for i in range(n_chunks) for p in config.policies
        if not _chunk_path(out, p, i).exists()
    ]  # fmt: skip
    world, labels = real_world_and_labels(config, out)
    bar = _progress(len(todo), progress)
    for done, (i, policy) in enumerate(todo):
        if max_chunks is not None and done >= max_chunks:
            bar.close()
            return None
        keys = campaign_keys(config.seed, i * config.chunk, config.chunk)
        records, seeds = _run_chunk(config, policy, keys, world, labels)
        keep = min(config.chunk, config.campaigns - i * config.chunk)
        arrays = {k: np.asarray(v)[:keep] for k, v in records.items()}
        arrays["seeds"] = np.asarray(seeds)[:keep]
        _save_atomic(_chunk_path(out, policy, i), arrays)
        bar.update(1)
    bar.close()
    results = gather(out, config)
    write_netcdf(out / "results.nc", results, config)
    return results


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled or total == 0, unit="chunk", file=sys.stderr,
                desc="campaign chunks")  # fmt: skip


def gather(out: str | os.PathLike, config: SweepConfig) -> dict[str, np.ndarray]:
    """All chunk records of a finished sweep: {name: (policies, campaigns, ...)}."""
    out = Path(out)
    n_chunks = -(-config.campaigns // config.chunk)
    per_policy = []
    for policy in config.policies:
        chunks = []
        for i in range(n_chunks):
            with np.load(_chunk_path(out, policy, i), allow_pickle=False) as z:
                chunks.append({k: z[k] for k in z.files})
        per_policy.append({k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]})
    return {k: np.stack([p[k] for p in per_policy]) for k in per_policy[0]}


def versions() -> dict[str, str]:
    """Versions of the software that produced a result."""
    return {
        "stemjax": stemjax.__version__, "jax": jax.__version__, "numpy": np.__version__,
        "python": platform.python_version(), "platform": platform.platform(),
        "devices": ", ".join(str(d) for d in jax.devices()),
    }  # fmt: skip


def write_netcdf(path: str | os.PathLike, results: dict[str, np.ndarray], config: SweepConfig):
    """Write sweep records as labelled netCDF-3 arrays (policy × campaign × step).

    Variables: every record (policy, campaign, step): the metrics of
    :data:`~stemjax.campaign.engine.METRICS`, or those of a library sweep
    (:data:`~stemjax.campaign.library.RECORDS`; a record with a trailing axis, such as
    ``composition``, gets a dimension ``<name>_axis``; booleans are stored as integers);
    ``seeds`` (policy, campaign, seed), ``policy_name`` (policy, name_length) chars.
    Global attributes: ``config`` (JSON) and ``versions`` (JSON). Readable by xarray or
    netCDF4; written with SciPy (no extra dependency).
    """
    from scipy.io import netcdf_file

    path = Path(path)
    tmp = path.with_suffix(".tmp.nc")
    records = [k for k in results if k != "seeds"]
    n_pol, n_camp, n_steps = results[records[0]].shape[:3]
    with netcdf_file(tmp, "w", version=2) as f:
        f.createDimension("policy", n_pol)
        f.createDimension("campaign", n_camp)
        f.createDimension("step", n_steps)
        f.createDimension("seed", results["seeds"].shape[-1])
        width = max(len(p) for p in config.policies)
        f.createDimension("name_length", width)
        names = f.createVariable("policy_name", "c", ("policy", "name_length"))
        names[:] = np.array([list(p.ljust(width)) for p in config.policies], "S1")
        for dim, size in (("campaign", n_camp), ("step", n_steps)):
            var = f.createVariable(dim, "i4", (dim,))
            var[:] = np.arange(size) + (1 if dim == "step" else 0)
        for name in records:
            arr = results[name]
            exact = np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool
            dtype = "i4" if exact else "f4"
            dims = ("policy", "campaign", "step")
            for axis, size in enumerate(arr.shape[3:]):
                dims += (f"{name}_axis{axis or ''}",)
                f.createDimension(dims[-1], size)
            var = f.createVariable(name, dtype, dims)
            var[:] = arr.astype(dtype)
        seeds = f.createVariable("seeds", "i4", ("policy", "campaign", "seed"))
        seeds[:] = results["seeds"].astype("i4")
        f.config = config.to_json()
        f.versions = json.dumps(versions())
        f.title = f"stemjax sweep: world {config.world}, policies {', '.join(config.policies)}"
    os.replace(tmp, path)


def read_netcdf(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], SweepConfig, dict]:
    """Records, configuration and versions of a ``results.nc``."""
    from scipy.io import netcdf_file

    with netcdf_file(path, "r", mmap=False) as f:
        results = {
            name: np.array(var[:]) for name, var in f.variables.items()
            if var.dimensions[:2] == ("policy", "campaign")
        }  # fmt: skip
        config = SweepConfig.from_json(f.config.decode() if isinstance(f.config, bytes) else f.config)
        info = json.loads(f.versions.decode() if isinstance(f.versions, bytes) else f.versions)
    return results, config, info
