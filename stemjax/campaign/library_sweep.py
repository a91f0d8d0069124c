"""Sweeps over random particle libraries: ``stemjax sweep --preset library-3d``.

A library sweep (``SweepConfig(world="library")``) runs, for each policy of
:data:`~stemjax.campaign.library_policy.LIBRARY_POLICY_NAMES`, ``campaigns`` campaigns of
``steps`` steps, each on its own library drawn from the campaign's key (the same library and
readings under every policy, so comparisons are paired). ``world_options`` sets, by name, any
field of :class:`~stemjax.worlds.LibraryConfig`, :class:`~stemjax.worlds.Instrument` and
:class:`~stemjax.campaign.library_policy.LibrarySurrogate`, the policy options
``switch_every``, ``alpha``, ``gain_pool``, ``novelty_weight``, and ``time_budget_s``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import numpy as np

from stemjax.campaign.library import simulate
from stemjax.campaign.library_policy import LIBRARY_POLICY_NAMES, LibrarySurrogate, library_policy
from stemjax.worlds.library_measurements import Instrument
from stemjax.worlds.particle_library import LibraryConfig

POLICY_OPTIONS = ("switch_every", "alpha", "gain_pool", "novelty_weight")


class LibrarySettings(NamedTuple):
    """Everything a library sweep needs besides the policy name."""

    library: LibraryConfig
    instrument: Instrument
    surrogate: LibrarySurrogate
    policy_options: dict
    time_budget_s: float


def _names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")}


def _tuples(value):
    return tuple(value) if isinstance(value, list) else value


def library_settings(options: dict) -> LibrarySettings:
    """Split a sweep's ``world_options`` into library, instrument, surrogate and policy settings
    (ValueError naming an unknown option and listing the known ones)."""
    groups = {"library": _names(LibraryConfig), "instrument": _names(Instrument),
              "surrogate": _names(LibrarySurrogate)}  # fmt: skip
    known = set().union(*groups.values(), POLICY_OPTIONS, {"time_budget_s"})
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"world_options for world 'library' must be among {sorted(known)}; got "
                         f"unknown {unknown}")  # fmt: skip
    pick = lambda names: {k: _tuples(v) for k, v in options.items() if k in names}  # noqa: E731
    budget = float(options.get("time_budget_s", math.inf))
    if math.isnan(budget) or budget <= 0:
        raise ValueError(f"time_budget_s must be > 0 s (or inf); got {budget!r}")
    return LibrarySettings(
        LibraryConfig(**pick(groups["library"])), Instrument(**pick(groups["instrument"])),
        LibrarySurrogate(**pick(groups["surrogate"])), pick(POLICY_OPTIONS), budget,
    )  # fmt: skip


def validate_library(config) -> None:
    """Raise ValueError for a library sweep that cannot run (policies, options, seeds)."""
    unknown = [p for p in config.policies if p not in LIBRARY_POLICY_NAMES]
    if unknown:
        raise ValueError(f"policies must be among {LIBRARY_POLICY_NAMES} for world 'library'; "
                         f"got unknown {unknown}")  # fmt: skip
    settings = library_settings(config.world_options)
    for name in config.policies:
        library_policy(name, surrogate=settings.surrogate, **settings.policy_options)
    slots = settings.library.region_slots
    if config.n_seeds > slots:
        raise ValueError(f"n_seeds must be at most {slots} (particle slots per region) for world "
                         f"'library'; got {config.n_seeds}")  # fmt: skip


@functools.lru_cache(maxsize=16)
def _settings(config_json: str):
    from stemjax.campaign.sweep import SweepConfig

    cfg = SweepConfig.from_json(config_json)
    return cfg, library_settings(cfg.world_options)


def run_library_chunk(config, policy_name: str, keys) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One chunk of library campaigns: (records {name: (c, steps, ...)}, seeds (c, s))."""
    key_json = dataclasses.replace(config, campaigns=1, chunk=1).to_json()
    cfg, s = _settings(key_json)
    policy = library_policy(policy_name, surrogate=s.surrogate, **s.policy_options)
    _, state, records = simulate(keys, s.library, policy, s.instrument, cfg.steps,
                                 n_seeds=cfg.n_seeds, time_budget_s=s.time_budget_s)  # fmt: skip
    records = jax.device_get(records)
    return {k: np.asarray(v) for k, v in records.items()}, np.asarray(state.seeds)
