"""Structure–property worlds: the candidates a campaign measures, real and simulated.

A :class:`World` holds N candidate locations of one experiment: what the surrogate sees
(patches or features), the hidden scalarizer a measurement reveals, positions, costs and the
seed measurements. Real worlds are read from the shared data (:func:`pfm_world`,
:func:`eels_world`); simulated ones are drawn from a key with the stemjax forward model
(:func:`domain_world`, :func:`particle_world`) and stack under ``jax.vmap``.
"""

from stemjax.worlds.simulated import (
    DomainWorldConfig,
    DomainTruth,
    ParticleWorldConfig,
    ParticleTruth,
    domain_ground_truth,
    domain_world,
    particle_ground_truth,
    particle_world,
)
from stemjax.worlds.structure_property import (
    EELS_FILE,
    PFM_FILE,
    World,
    candidate_centres,
    data_dir,
    eels_world,
    pfm_reference_runs,
    pfm_world,
)

__all__ = [
    "EELS_FILE",
    "PFM_FILE",
    "DomainWorldConfig",
    "DomainTruth",
    "ParticleWorldConfig",
    "ParticleTruth",
    "World",
    "candidate_centres",
    "data_dir",
    "domain_ground_truth",
    "domain_world",
    "eels_world",
    "particle_ground_truth",
    "particle_world",
    "pfm_reference_runs",
    "pfm_world",
]
