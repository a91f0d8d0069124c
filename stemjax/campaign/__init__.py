"""Campaigns: the autonomous loop under ``lax.scan``, many campaigns under ``vmap``, sweeps
sharded over devices and resumable from disk, and their reports. Campaigns on random particle
libraries (paper 004) live in :mod:`stemjax.campaign.library`."""

from stemjax.campaign.engine import (
    METRICS,
    CampaignState,
    MetricLabels,
    init_state,
    metric_labels,
    random_seeds,
    run,
    run_many,
    step,
)
from stemjax.campaign.library import RECORDS as LIBRARY_RECORDS
from stemjax.campaign.library import LibraryState, simulate
from stemjax.campaign.library import run as run_library
from stemjax.campaign.library import run_many as run_many_libraries
from stemjax.campaign.library_policy import (
    LIBRARY_POLICY_NAMES,
    SWITCH_RULES,
    LibraryPolicy,
    LibrarySurrogate,
    expected_max_poisson,
    library_policy,
)
from stemjax.campaign.policy import POLICY_NAMES, Policy, Surrogate, make_policy, random_scores
from stemjax.campaign.presets import PRESETS, preset
from stemjax.campaign.report import write_report
from stemjax.campaign.sweep import (
    WORLDS,
    SweepConfig,
    read_netcdf,
    real_world_and_labels,
    sweep,
    validate,
)

__all__ = [
    "LIBRARY_POLICY_NAMES",
    "LIBRARY_RECORDS",
    "SWITCH_RULES",
    "LibraryPolicy",
    "LibraryState",
    "LibrarySurrogate",
    "expected_max_poisson",
    "library_policy",
    "run_library",
    "run_many_libraries",
    "simulate",
    "METRICS",
    "POLICY_NAMES",
    "PRESETS",
    "WORLDS",
    "CampaignState",
    "MetricLabels",
    "Policy",
    "Surrogate",
    "SweepConfig",
    "init_state",
    "make_policy",
    "metric_labels",
    "preset",
    "random_scores",
    "random_seeds",
    "read_netcdf",
    "real_world_and_labels",
    "run",
    "run_many",
    "step",
    "sweep",
    "validate",
    "write_report",
]
