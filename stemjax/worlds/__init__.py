"""Structure–property worlds: the candidates a campaign measures, real and simulated.

A :class:`World` holds N candidate locations of one experiment: what the surrogate sees
(patches or features), the hidden scalarizer a measurement reveals, positions, costs and the
seed measurements. Real worlds are read from the shared data (:func:`pfm_world`,
:func:`eels_world`); simulated ones are drawn from a key with the stemjax forward model
(:func:`domain_world`, :func:`particle_world`) and stack under ``jax.vmap``.

Random particle libraries (:mod:`stemjax.worlds.particle_library`, paper 004) are a different
kind of world: many particles of random composition spread over a stage-accessible area,
explored region by region (:func:`make_library`, with the instrument models of
:mod:`stemjax.worlds.library_measurements`).
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
from stemjax.worlds.library_measurements import (
    ACTIONS,
    EDXResult,
    Instrument,
    LibraryObservations,
    edx_measure,
    eels_measure,
    measurement_times,
    observe_library,
    overview_scan,
    region_change_times,
    simplex_reestimate,
)
from stemjax.worlds.particle_library import (
    LibraryConfig,
    ParticleLibrary,
    composition_dimensions,
    eval_grid,
    expected_particle_count,
    make_library,
    simplex_grid,
    target_function,
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
    "ACTIONS",
    "EDXResult",
    "Instrument",
    "LibraryConfig",
    "LibraryObservations",
    "ParticleLibrary",
    "composition_dimensions",
    "edx_measure",
    "eels_measure",
    "eval_grid",
    "expected_particle_count",
    "make_library",
    "measurement_times",
    "observe_library",
    "overview_scan",
    "region_change_times",
    "simplex_grid",
    "simplex_reestimate",
    "target_function",
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
