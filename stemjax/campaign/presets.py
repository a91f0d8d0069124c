"""Named sweep configurations for ``stemjax sweep --preset NAME``."""

from __future__ import annotations

from stemjax.campaign.sweep import SweepConfig

PRESETS: dict[str, SweepConfig] = {
    # make demo: the real PFM world, paper 003's three policies, an exact GP on the first 16
    # principal components of the patches
    "quick": SweepConfig(world="pfm", campaigns=64, steps=100, chunk=64, fit_steps=50,
                         refit_steps=3, principal_components=16),
    # paper 003's protocol (10 seeds, 300 steps) over 100 campaigns per policy
    "pfm": SweepConfig(world="pfm", campaigns=100, steps=300, chunk=50, refit_steps=1,
                       principal_components=16),
    # the same with the papers' deep-kernel surrogate (CNN on 16×16 patches; for a GPU)
    "pfm-dkl": SweepConfig(world="pfm", campaigns=100, steps=300, chunk=20, surrogate="dkl",
                           learning_rate=0.01),
    "eels": SweepConfig(world="eels", campaigns=100, steps=300, chunk=20, feature_space=False),
    # simulated worlds, a new one per campaign
    "domains": SweepConfig(world="domains", campaigns=64, steps=100, chunk=16,
                           feature_space=False),
    "particles": SweepConfig(world="particles", campaigns=64, steps=100, chunk=16,
                             feature_space=False),
    # random particle libraries (paper 004 §IV.3, R2): region switching by value against the
    # two fixed rules, 3 seeds, 150 iterations in 3-D and 300 in 4-D and 5-D
    "library-3d": SweepConfig(world="library", policies=("mu", "every", "exhaust"),
                              campaigns=256, steps=150, n_seeds=3, chunk=64,
                              feature_space=False, world_options={"n_components": 3}),
    "library-4d": SweepConfig(world="library", policies=("mu", "every", "exhaust"),
                              campaigns=256, steps=300, n_seeds=3, chunk=32,
                              feature_space=False, world_options={"n_components": 4}),
    "library-5d": SweepConfig(world="library", policies=("mu", "every", "exhaust"),
                              campaigns=256, steps=300, n_seeds=3, chunk=32,
                              feature_space=False, world_options={"n_components": 5}),
}  # fmt: skip
"""Preset name → :class:`~stemjax.campaign.sweep.SweepConfig`."""


def preset(name: str) -> SweepConfig:
    """The named preset; ValueError listing the names for an unknown one."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}; got {name!r}")
    return PRESETS[name]
