"""What the microscope reports about a random particle library, and how long it takes.

The workflow of paper 004 (§IV, Fig. 2) in one field of view: an overview scan finds the
particles, one EDX frame gives every particle's composition with element-wise uncertainties,
then EELS characterises particles one at a time. Moving to another field of view takes a
stage move, a retune, a new overview and a new EDX frame.

**EDX (eqs. 2–3).** Element i of a particle of radius r gives n_i ~ Poisson(e_i c_i) X-ray
counts in a frame of t seconds, with e_i = rate · t · (4/3)πr³ · k_i (rate in counts nm⁻³ s⁻¹,
k_i the element's relative sensitivity). Each fraction is estimated on its own as ĉ_i = n_i/e_i
with the counting uncertainty σ_i = √max(n_i, 1)/e_i, so the ĉ_i do not sum to 1. The least
certain component k = argmax σ_i is then re-estimated from the others,

    c_k = 1 − Σ_{i≠k} ĉ_i                                                  eq. 2
    σ_k = (Σ_{i≠k} σ_i²)^{1/2}                                             eq. 3

and σ_tot = σ_k is the particle's total compositional uncertainty. The result sums to 1
exactly (a re-estimated fraction may fall slightly below 0 for a poorly measured particle; it
is kept, not clipped, so the estimate stays unbiased).

**EELS.** A reading of the particle's target with additive Gaussian noise.

**Time (R2 of shared/reference/checks.md).** Each action has a duration in seconds, counted
per kind (:data:`ACTIONS`): an EDX frame (10 s), an EELS acquisition (1 s per particle), a
beam-shift move (0.02 s of control overhead), stage travel (distance / 10 µm s⁻¹), a retune
after each region change (5 s) and the overview scan (0 s by default: R2 gives no time for it,
it is taken as part of the retune). The stage move follows eq. 5 (:func:`motion_time`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

from stemjax._validation import check_nonnegative, check_positive, is_concrete
from stemjax.acquisition._checks import check_simplex
from stemjax.acquisition.costs import motion_time
from stemjax.worlds.particle_library import LibraryConfig, ParticleLibrary
from stemjax.worlds.simulated import _shot_noise

__all__ = [
    "ACTIONS",
    "EDXResult",
    "Instrument",
    "LibraryObservations",
    "edx_measure",
    "eels_measure",
    "measurement_times",
    "observe_library",
    "overview_scan",
    "region_change_times",
    "simplex_reestimate",
]

ACTIONS = ("edx", "eels", "beam_shift", "stage", "retune", "overview")
"""Kinds of action whose time a campaign counts, in the order of the time vectors."""


@dataclass(frozen=True)
class Instrument:
    """Durations, speeds and detector settings of the microscope (static, hashable).

    Defaults are R2 (paper 004 §IV.3) where the paper gives them.

    Attributes:
        edx_frame_s: one EDX frame over a field of view, s.
        eels_s: one EELS acquisition on one particle, s.
        beam_shift_s: one beam-shift move (control overhead, 10–30 ms), s.
        stage_speed_um_per_s: stage speed v, µm/s (> 0).
        retune_s: retuning after each region change, s (t_st of eq. 5).
        overview_s: the overview scan of a new field of view, s.
        cost_per_s: α of eq. 6, converting stage-move time into cost (the paper: 1).
        beam_shift_reach_um: d_bs of eqs. 5–6, µm; default (None): half the diagonal of the
            field of view, so every particle of a region is within beam-shift reach.
        min_detectable_radius_nm: the overview scan finds particles at least this large, nm.
        edx_counts_per_nm3_s: X-ray counts per nm³ of particle per second at unit sensitivity.
            The default gives ≈ 0.02 uncertainty on a third of a 20 nm particle in one frame.
        edx_sensitivity: relative sensitivities k_i, one per component (None: all 1).
        eels_noise: standard deviation of an EELS reading, target units (≥ 0).
    """

    edx_frame_s: float = 10.0
    eels_s: float = 1.0
    beam_shift_s: float = 0.02
    stage_speed_um_per_s: float = 10.0
    retune_s: float = 5.0
    overview_s: float = 0.0
    cost_per_s: float = 1.0
    beam_shift_reach_um: float | None = None
    min_detectable_radius_nm: float = 2.0
    edx_counts_per_nm3_s: float = 2.5e-3
    edx_sensitivity: tuple[float, ...] | None = None
    eels_noise: float = 0.02

    def __post_init__(self):
        for name in ("edx_frame_s", "eels_s", "beam_shift_s", "retune_s", "overview_s"):
            check_nonnegative(name, getattr(self, name), "s")
        check_positive("eels_s", self.eels_s, "s")
        check_positive("stage_speed_um_per_s", self.stage_speed_um_per_s, "µm/s")
        check_positive("cost_per_s", self.cost_per_s, "per s")
        if self.beam_shift_reach_um is not None:
            check_nonnegative("beam_shift_reach_um", self.beam_shift_reach_um, "µm")
        check_nonnegative("min_detectable_radius_nm", self.min_detectable_radius_nm, "nm")
        check_positive("edx_counts_per_nm3_s", self.edx_counts_per_nm3_s, "counts nm⁻³ s⁻¹")
        if self.edx_sensitivity is not None:
            object.__setattr__(self, "edx_sensitivity", tuple(map(float, self.edx_sensitivity)))
            check_positive("edx_sensitivity", self.edx_sensitivity)
        check_nonnegative("eels_noise", self.eels_noise)

    def reach_um(self, config: LibraryConfig) -> float:
        """d_bs: the given reach, or half the field of view's diagonal."""
        if self.beam_shift_reach_um is not None:
            return float(self.beam_shift_reach_um)
        return 0.5 * math.hypot(*config.fov_um)

    def sensitivity(self, n_components: int) -> np.ndarray:
        if self.edx_sensitivity is None:
            return np.ones(n_components, np.float32)
        if len(self.edx_sensitivity) != n_components:
            raise ValueError(f"edx_sensitivity must have {n_components} values (one per "
                             f"component); got {len(self.edx_sensitivity)}")  # fmt: skip
        return np.asarray(self.edx_sensitivity, np.float32)


# --------------------------------------------------------------------------------------------
# time of actions


def measurement_times(instrument: Instrument) -> Float[Array, " 6"]:
    """Time of measuring one particle by EELS within reach, per kind of :data:`ACTIONS`, s."""
    t = np.zeros(len(ACTIONS), np.float32)
    t[ACTIONS.index("beam_shift")] = instrument.beam_shift_s
    t[ACTIONS.index("eels")] = instrument.eels_s
    return jnp.asarray(t)


def region_change_times(
    distance_um: Float[ArrayLike, "..."], instrument: Instrument, reach_um: float
) -> Float[Array, "... 6"]:
    """Time of moving to another field of view at ``distance_um`` and mapping it, per kind, s.

    The move follows eq. 5 (:func:`~stemjax.acquisition.motion_time` with t_st = retune):
    within ``reach_um`` a beam shift, beyond it stage travel d/v, the retune and a beam shift.
    A new field of view then needs its overview scan and one EDX frame.

    Args:
        distance_um: (...) distances between the field-of-view centres, µm (≥ 0).
        instrument: the :class:`Instrument`.
        reach_um: d_bs, the beam-shift reach, µm.

    Returns:
        (..., 6) times in the order of :data:`ACTIONS`.
    """
    check_nonnegative("distance_um", distance_um, "µm")
    d = jnp.asarray(distance_um, jnp.result_type(distance_um, float))
    total = motion_time(d, beam_shift_range_um=reach_um, beam_shift_time_s=instrument.beam_shift_s,
                        stage_latency_s=instrument.retune_s,
                        stage_speed_um_per_s=instrument.stage_speed_um_per_s)  # fmt: skip
    stage = d > reach_um
    parts = {
        "edx": jnp.full_like(d, instrument.edx_frame_s),
        "eels": jnp.zeros_like(d),
        "beam_shift": jnp.full_like(d, instrument.beam_shift_s),
        "stage": jnp.where(stage, total - instrument.retune_s - instrument.beam_shift_s, 0.0),
        "retune": jnp.where(stage, instrument.retune_s, 0.0),
        "overview": jnp.full_like(d, instrument.overview_s),
    }
    return jnp.stack([parts[k] for k in ACTIONS], axis=-1)


# --------------------------------------------------------------------------------------------
# overview scan


def overview_scan(
    library: ParticleLibrary, region: int | Int[ArrayLike, ""], instrument: Instrument
) -> tuple[Int[Array, " M"], Bool[Array, " M"]]:
    """The particles an overview scan of ``region`` finds: (indices (M,), found (M,)).

    A particle is found when it lies in the field of view and its radius is at least
    ``instrument.min_detectable_radius_nm``; ``indices`` are its slots in the library.
    """
    if is_concrete(region):
        n = library.config.n_regions
        if not (0 <= int(region) < n):
            raise ValueError(f"region must lie in [0, {n - 1}]; got {int(region)}")
    idx = library.members[region]
    found = library.member_mask[region] & (
        library.radii_nm[idx] >= instrument.min_detectable_radius_nm
    )
    return idx, found


# --------------------------------------------------------------------------------------------
# EDX: counting statistics and the simplex constraint


class EDXResult(eqx.Module):
    """One EDX quantification (eqs. 2–3).

    Attributes:
        compositions: (..., q) fractions summing to 1 (the least certain one re-estimated).
        sigmas: (..., q) their uncertainties (the re-estimated one by eq. 3).
        total_sigma: (...) σ_tot, the uncertainty of the re-estimated component.
        reestimated: (...) index k of the re-estimated component.
    """

    compositions: Float[Array, "... q"]
    sigmas: Float[Array, "... q"]
    total_sigma: Float[Array, "..."]
    reestimated: Int[Array, "..."]


def simplex_reestimate(
    fractions: Float[ArrayLike, "... q"], sigmas: Float[ArrayLike, "... q"]
) -> EDXResult:
    """Enforce Σc = 1 through the least certain component (paper 004, eqs. 2–3).

    Args:
        fractions: (..., q) independently measured fractions (finite; need not sum to 1).
        sigmas: (..., q) their uncertainties (≥ 0), same shape.

    Returns:
        :class:`EDXResult` with c_k = 1 − Σ_{i≠k} c_i and σ_k = (Σ_{i≠k} σ_i²)^{1/2} for
        k = argmax σ_i; the other components are unchanged.
    """
    dtype = jnp.result_type(fractions, sigmas, float)
    check_nonnegative("sigmas", sigmas)
    if is_concrete(fractions) and not np.all(np.isfinite(np.asarray(fractions, float))):
        raise ValueError("fractions must be finite (no NaN or infinity)")
    c, s = jnp.asarray(fractions, dtype), jnp.asarray(sigmas, dtype)
    if c.shape != s.shape or c.ndim < 1 or c.shape[-1] < 2:
        raise ValueError(f"fractions and sigmas must share a shape (..., q) with q >= 2; got "
                         f"{c.shape} and {s.shape}")  # fmt: skip
    return _reestimate(c, s)


def _reestimate(c: Array, s: Array) -> EDXResult:
    k = jnp.argmax(s, axis=-1)
    pick = jax.nn.one_hot(k, c.shape[-1], dtype=bool)
    others = jnp.where(pick, 0.0, c)
    c_k = 1.0 - jnp.sum(others, axis=-1)
    s_k = jnp.sqrt(jnp.sum(jnp.where(pick, 0.0, s * s), axis=-1))
    comps = jnp.where(pick, c_k[..., None], c)
    sig = jnp.where(pick, s_k[..., None], s)
    return EDXResult(comps, sig, s_k, k.astype(jnp.int32))


def edx_measure(
    key: PRNGKeyArray,
    compositions: Float[ArrayLike, "... q"],
    radii_nm: Float[ArrayLike, "..."],
    instrument: Instrument = Instrument(),
) -> EDXResult:
    """Simulated EDX quantification of particles in one frame (counting statistics, eqs. 2–3).

    Args:
        key: PRNG key for the Poisson counts.
        compositions: (..., q) true compositions on the simplex.
        radii_nm: (...) particle radii, nm (> 0).
        instrument: frame time, count rate and sensitivities.

    Returns:
        The :class:`EDXResult` the analyst would report.
    """
    check_simplex("compositions", compositions)
    check_positive("radii_nm", radii_nm, "nm")
    c = jnp.asarray(compositions, jnp.result_type(compositions, float))
    return _edx_jit(key, c, jnp.asarray(radii_nm, c.dtype), instrument)


def _edx(key, c, radii, instrument: Instrument) -> EDXResult:
    k = jnp.asarray(instrument.sensitivity(c.shape[-1]), c.dtype)
    volume = (4.0 / 3.0) * jnp.pi * radii**3
    per_fraction = (instrument.edx_counts_per_nm3_s * instrument.edx_frame_s * volume)[..., None] * k
    counts = _shot_noise(key, per_fraction * jnp.maximum(c, 0.0))  # Poisson, loop-free
    safe = jnp.maximum(per_fraction, jnp.finfo(c.dtype).tiny)
    fractions = counts / safe
    sigmas = jnp.sqrt(jnp.maximum(counts, 1.0)) / safe
    return _reestimate(fractions, sigmas)


_edx_jit = eqx.filter_jit(lambda key, c, radii, instrument: _edx(key, c, radii, instrument))


def eels_measure(
    key: PRNGKeyArray, targets: Float[ArrayLike, "..."], instrument: Instrument = Instrument()
) -> Float[Array, "..."]:
    """EELS readings of the targets: f + ``eels_noise`` · N(0, 1), target units."""
    check_nonnegative("eels_noise", instrument.eels_noise)
    t = jnp.asarray(targets, jnp.result_type(targets, float))
    return t + instrument.eels_noise * jax.random.normal(key, t.shape, t.dtype)


# --------------------------------------------------------------------------------------------
# everything the instruments would report, drawn once per campaign


class LibraryObservations(eqx.Module):
    """What the instruments report about each particle of a library, drawn once per campaign.

    Each particle is EDX-mapped at most once (with its region) and EELS-measured at most once,
    so drawing every reading up front from the campaign's key is the same as drawing it when
    the measurement happens, and keeps the campaign's steps free of random draws.

    Attributes:
        found: (P,) True for particles an overview scan detects.
        compositions: (P, q) EDX compositions (eqs. 2–3).
        total_sigma: (P,) EDX σ_tot.
        readings: (P,) EELS readings of the target.
    """

    found: Bool[Array, " P"]
    compositions: Float[Array, "P q"]
    total_sigma: Float[Array, " P"]
    readings: Float[Array, " P"]


def observe_library(
    key: PRNGKeyArray, library: ParticleLibrary, instrument: Instrument = Instrument()
) -> LibraryObservations:
    """Draw every reading of :class:`LibraryObservations` (jittable; vmap over campaigns)."""
    k_edx, k_eels = jax.random.split(key)
    found = library.present & (library.radii_nm >= instrument.min_detectable_radius_nm)
    edx = _edx(k_edx, library.compositions, library.radii_nm, instrument)
    readings = eels_measure(k_eels, library.targets, instrument)
    return LibraryObservations(found, edx.compositions, edx.total_sigma, readings)
