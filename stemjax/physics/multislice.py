"""Multislice simulation: transmission, Fresnel propagation, STEM scans, frozen phonons, HRTEM.

The specimen is cut into slices of thickness Δz (Å). Slice s has projected potential V_s
(V·Å, :mod:`stemjax.physics.potentials`) and transmission function t_s = exp(iσV_s), with σ
the interaction parameter. A wave ψ crosses a slice as

    ψ ← FFT⁻¹[ P · FFT[t_s ψ] ],   P(k) = exp(−iπλΔz k²),

so the wave after the last slice lies at the exit surface. t_s and P are band-limited to
|k| ≤ 1/(3Δx) (2/3 of the Nyquist frequency), so that the largest angle the simulation keeps
is λ/(3Δx) (:func:`~stemjax.physics.detector.max_scattering_angle`, row P5): products never
alias. Grids are periodic and span the specimen's cell; rows run along y, columns along x.

A STEM probe at (x, y) is the :class:`~stemjax.physics.Probe` wave shifted by
exp(−2πi k·r); positions are scanned with ``vmap`` in chunks under ``lax.map`` so that memory
grows with the chunk, not the scan. Frozen phonons displace every site independently in every
slice by Gaussian offsets of variance B/(8π²) per in-plane axis, drawn from a key, and average
the detected intensities over configurations.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Complex, Float, PRNGKeyArray

from stemjax._validation import check_finite, check_int_at_least, is_concrete
from stemjax.physics.constants import interaction_parameter, wavelength
from stemjax.physics.detector import AnnularDetector, max_scattering_angle, radial_bins
from stemjax.physics.potentials import (
    _slice_potentials,
    _static_arguments,
    projected_potential,
    specimen_grid,
)
from stemjax.physics.probe import Probe, _pair, spatial_frequencies
from stemjax.physics.specimen import Specimen


def band_limit(shape: tuple[int, int], sampling) -> Float[Array, "h w"]:
    """(h, w) 1 for |k| ≤ 1/(3Δx) (Δx the coarser pixel size), else 0; FFT order."""
    ky, kx = spatial_frequencies(shape, sampling)
    return (kx**2 + ky**2 <= (1.0 / (3.0 * max(_pair(sampling)))) ** 2).astype(ky.dtype)


def transmission_function(
    potential: Float[ArrayLike, "... h w"], energy_kev: float, sampling
) -> Complex[Array, "... h w"]:
    """Band-limited transmission function exp(iσV) of projected potentials ``potential`` (V·Å).

    Args:
        potential: (..., h, w) projected potential, V·Å.
        energy_kev: beam energy, keV.
        sampling: pixel size, Å (scalar or (row, column)).
    """
    potential = jnp.asarray(potential)
    sigma = interaction_parameter(energy_kev).astype(potential.dtype)
    mask = band_limit(potential.shape[-2:], sampling)
    return jnp.fft.ifft2(jnp.fft.fft2(jnp.exp(1j * sigma * potential)) * mask)


def fresnel_propagator(
    shape: tuple[int, int], sampling, energy_kev: float, thickness: ArrayLike
) -> Complex[Array, "h w"]:
    """(h, w) band-limited Fresnel propagator exp(−iπλΔz k²) over ``thickness`` Δz (Å)."""
    ky, kx = spatial_frequencies(shape, sampling)
    lam = wavelength(energy_kev)
    phase = jnp.pi * lam * jnp.asarray(thickness) * (kx**2 + ky**2)
    return jnp.exp(-1j * phase) * band_limit(shape, sampling)


def _exit_wave_fourier(wave, transmissions, propagator):
    """Exit wave in reciprocal space (FFT order) of real-space ``wave`` after all slices."""

    def cross(w, t):
        return jnp.fft.ifft2(jnp.fft.fft2(w * t) * propagator), None

    wave, _ = jax.lax.scan(cross, wave, transmissions[:-1])
    return jnp.fft.fft2(wave * transmissions[-1]) * propagator


def propagate(
    wave: Complex[ArrayLike, "h w"],
    transmissions: Complex[ArrayLike, "n_slices h w"],
    propagator: Complex[ArrayLike, "h w"],
) -> Complex[Array, "h w"]:
    """Real-space wave after transmission through and propagation across every slice."""
    return jnp.fft.ifft2(_exit_wave_fourier(jnp.asarray(wave), jnp.asarray(transmissions),
                                            jnp.asarray(propagator)))  # fmt: skip


def thermal_displacements(
    key: PRNGKeyArray, specimen: Specimen, n_slices: int
) -> Float[Array, "n_slices n 2"]:
    """Frozen-phonon in-plane offsets (x, y) of every site in every slice, Å.

    Independent Gaussians of standard deviation √(B/8π²) per axis (B = ``debye_waller``).
    """
    sigma = jnp.sqrt(specimen.debye_waller / (8.0 * jnp.pi**2))
    noise = jax.random.normal(key, (n_slices, specimen.capacity, 2), sigma.dtype)
    return noise * sigma[None, :, None]


class Multislice(eqx.Module):
    """Multislice STEM simulation of specimens that share a cell with a template.

    Attributes:
        probe: the probe (aberrations, aperture, focal spread; the source size is not
            applied: blur the image with it afterwards).
        shape: (rows, columns) of the periodic grid spanning the cell (static).
        sampling: (row, column) pixel size, Å (static).
        slice_thickness: Δz, Å (static).
        n_slices: number of slices, ⌈cell thickness / Δz⌉ (static).
        parametrisation: ``"lobato"`` or ``"kirkland"`` scattering factors (static).
        species: atomic numbers the potential is built for (static).
    """

    probe: Probe
    shape: tuple[int, int] = eqx.field(static=True)
    sampling: tuple[float, float] = eqx.field(static=True)
    slice_thickness: float = eqx.field(static=True)
    n_slices: int = eqx.field(static=True)
    parametrisation: str = eqx.field(static=True)
    species: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self,
        probe: Probe,
        specimen: Specimen,
        sampling: float,
        slice_thickness: float = 2.0,
        *,
        parametrisation: str = "lobato",
        species: Sequence[int] | None = None,
    ):
        """Args: ``specimen`` is a template with a concrete cell (and concrete atomic numbers
        unless ``species`` is given); ``sampling`` is the largest pixel size, Å (the grid
        spans the cell exactly, so the pixels may be slightly smaller); other arguments as
        in the attributes."""
        self.probe = probe
        shape, sampling = specimen_grid(specimen, sampling)
        self.shape, self.sampling, self.species, self.n_slices = _static_arguments(
            specimen, shape, sampling, species, parametrisation, slice_thickness, None
        )
        self.slice_thickness = float(slice_thickness)
        self.parametrisation = parametrisation
        reach = float(max_scattering_angle(max(self.sampling), probe.energy_kev))
        if probe.semiangle_mrad > reach:
            raise ValueError(
                f"sampling {max(self.sampling):.4f} Å keeps angles up to {reach:.1f} mrad, less "
                f"than the probe's semiangle_mrad {probe.semiangle_mrad}; use a finer sampling"
            )

    def transmissions(
        self, specimen: Specimen, key: PRNGKeyArray | None = None
    ) -> Complex[Array, "n_slices h w"]:
        """Transmission functions of the slices; a frozen-phonon configuration when ``key``
        is given (then without Debye–Waller damping), else the damped average potential."""
        self._check_cell(specimen)
        return _transmissions(self, specimen, key)

    def probe_wave(self, position: Float[ArrayLike, "2"], defocus_offset=0.0) -> Array:
        """(h, w) real-space probe wave centred at ``position`` (x, y) Å; |ψ|² sums to 1."""
        ky, kx = spatial_frequencies(self.shape, self.sampling)
        wave = self.probe.wave_fourier(self.shape, self.sampling, defocus_offset)
        position = jnp.asarray(position)
        shift = jnp.exp(-2j * jnp.pi * (kx * position[0] + ky * position[1]))
        return jnp.fft.ifft2(wave * shift)

    def diffraction_pattern(
        self, transmissions: Complex[ArrayLike, "n_slices h w"], position: Float[ArrayLike, "2"]
    ) -> Float[Array, "h w"]:
        """(h, w) exit-wave intensity in reciprocal space (FFT order) for a probe at
        ``position`` (x, y) Å, averaged over the focal spread; sums to the transmitted
        fraction of the incident electrons (1 up to what the band limit removes)."""
        return _diffraction_pattern(self, jnp.asarray(transmissions), jnp.asarray(position))

    def scan(
        self,
        specimen: Specimen,
        positions: Float[ArrayLike, "... 2"],
        detectors: Sequence[AnnularDetector],
        *,
        key: PRNGKeyArray | None = None,
        phonons: int = 1,
        chunk_size: int = 16,
    ) -> Float[Array, "... n_detectors"]:
        """Fraction of incident electrons each detector collects at each probe position.

        Args:
            specimen: the specimen (same cell as the template).
            positions: (..., 2) probe positions (x, y), Å.
            detectors: annular detectors; each outer angle must lie within λ/(3Δx) (P5).
            key: frozen-phonon key; None uses the Debye–Waller-damped potential.
            phonons: number of frozen-phonon configurations averaged (needs ``key``).
            chunk_size: probe positions computed at once under ``vmap`` (static).

        Returns:
            (..., n_detectors) detected fractions.
        """
        if not detectors:
            raise ValueError("detectors must hold at least one AnnularDetector; got none")
        energy = self.probe.energy_kev
        masks = jnp.stack([d.mask(self.shape, self.sampling, energy) for d in detectors])
        return self._scan(specimen, positions, _Annular(masks), key, phonons, chunk_size)

    def radial_scan(
        self,
        specimen: Specimen,
        positions: Float[ArrayLike, "... 2"],
        bin_mrad: float = 1.0,
        *,
        key: PRNGKeyArray | None = None,
        phonons: int = 1,
        chunk_size: int = 16,
    ) -> Float[Array, "... n_bins"]:
        """Diffraction intensity in rings [k·bin_mrad, (k + 1)·bin_mrad) out to λ/(3Δx) at
        each probe position; other arguments as in :meth:`scan`."""
        index, n_bins = radial_bins(self.shape, self.sampling, self.probe.energy_kev, bin_mrad)
        return self._scan(specimen, positions, _Radial(index, n_bins), key, phonons, chunk_size)

    def _scan(self, specimen, positions, reducer, key, phonons, chunk_size):
        self._check_cell(specimen)
        phonons = check_int_at_least("phonons", phonons, 1)
        chunk_size = check_int_at_least("chunk_size", chunk_size, 1)
        if key is None and phonons > 1:
            raise ValueError(f"phonons > 1 needs a key; got phonons={phonons} and key=None")
        positions = jnp.asarray(positions)
        if positions.ndim < 1 or positions.shape[-1] != 2:
            raise ValueError(f"positions must have shape (..., 2); got {positions.shape}")
        check_finite("positions", positions)
        flat = positions.reshape(-1, 2)
        keys = None if key is None else jax.random.split(key, phonons)
        signals = _scan(self, specimen, flat, reducer, keys, chunk_size)
        return signals.reshape(*positions.shape[:-1], signals.shape[-1])

    def _check_cell(self, specimen: Specimen) -> None:
        if is_concrete(specimen.cell):
            extent = np.array([self.shape[1] * self.sampling[1], self.shape[0] * self.sampling[0]])
            if not np.allclose(np.asarray(specimen.cell)[:2], extent, rtol=1e-5):
                raise ValueError(
                    f"specimen.cell[:2] must match the simulation grid's extent {extent} Å; "
                    f"got {np.asarray(specimen.cell)[:2]}"
                )


class _Annular(eqx.Module):
    masks: Array  # (n_detectors, h, w)

    def __call__(self, pattern):
        return jnp.einsum("dhw,hw->d", self.masks, pattern)


class _Radial(eqx.Module):
    index: Array  # (h, w) bin of each pixel
    n_bins: int = eqx.field(static=True)

    def __call__(self, pattern):
        rings = jax.ops.segment_sum(pattern.ravel(), self.index.ravel(), self.n_bins + 1)
        return rings[: self.n_bins]


@eqx.filter_jit
def _transmissions(model: Multislice, specimen: Specimen, key) -> Array:
    displacements = None if key is None else thermal_displacements(key, specimen, model.n_slices)
    potentials = _slice_potentials(
        specimen, model.shape, model.sampling, model.slice_thickness, model.n_slices,
        model.parametrisation, model.species, displacements,
    )  # fmt: skip
    return transmission_function(potentials, model.probe.energy_kev, model.sampling)


def _incident_waves(model: Multislice):
    """Probe waves in reciprocal space at the Gauss–Hermite focal nodes, and their weights."""
    offsets, weights = model.probe._focal_nodes()
    waves = [model.probe.wave_fourier(model.shape, model.sampling, o) for o in offsets]
    return jnp.stack(waves), weights


def _pattern(model, transmissions, propagator, waves, weights, position):
    ky, kx = spatial_frequencies(model.shape, model.sampling)
    shift = jnp.exp(-2j * jnp.pi * (kx * position[0] + ky * position[1]))
    size = model.shape[0] * model.shape[1]
    total = 0.0
    for wave, weight in zip(waves, weights):
        exit_k = _exit_wave_fourier(jnp.fft.ifft2(wave * shift), transmissions, propagator)
        total = total + weight * jnp.abs(exit_k) ** 2 / size
    return total


def _propagator(model: Multislice) -> Array:
    return fresnel_propagator(model.shape, model.sampling, model.probe.energy_kev,
                              model.slice_thickness)  # fmt: skip


@eqx.filter_jit
def _diffraction_pattern(model: Multislice, transmissions, position):
    waves, weights = _incident_waves(model)
    return _pattern(model, transmissions, _propagator(model), waves, weights, position)


@eqx.filter_jit
def _scan(model: Multislice, specimen, positions, reducer, keys, chunk_size: int):
    count = positions.shape[0]
    n_chunks = -(-count // chunk_size)
    padded = jnp.concatenate([positions, jnp.zeros((n_chunks * chunk_size - count, 2),
                                                   positions.dtype)])  # fmt: skip
    chunks = padded.reshape(n_chunks, chunk_size, 2)
    propagator = _propagator(model)
    waves, weights = _incident_waves(model)

    def configuration(transmissions):
        def detect(position):
            pattern = _pattern(model, transmissions, propagator, waves, weights, position)
            return reducer(pattern)

        signals = jax.lax.map(jax.vmap(detect), chunks)
        return signals.reshape(n_chunks * chunk_size, -1)[:count]

    if keys is None:
        return configuration(_transmissions(model, specimen, None))

    def accumulate(total, key):
        return total + configuration(_transmissions(model, specimen, key)), None

    first = configuration(_transmissions(model, specimen, keys[0]))
    total, _ = jax.lax.scan(accumulate, first, keys[1:])
    return total / keys.shape[0]


def ctf_image(
    specimen: Specimen,
    lens: Probe,
    sampling: float,
    *,
    parametrisation: str = "lobato",
    species: Sequence[int] | None = None,
) -> Float[Array, "h w"]:
    """Bright-field HRTEM image of a thin specimen: phase grating and objective-lens transfer.

    The whole specimen is projected into one phase grating t = exp(iσV) (band-limited), and
    the image wave is FFT⁻¹[T(k) A(k) exp(−iχ(k))], with the aperture A and the aberration
    phase χ of ``lens`` (a :class:`Probe` whose ``semiangle_mrad`` is the objective aperture
    and whose aberrations are those of the objective lens). Coherent illumination; the
    incident wave has unit intensity.

    Args:
        specimen: the specimen; the grid spans its cell.
        lens: objective lens (aperture semi-angle mrad, aberrations in Å and rad).
        sampling: largest pixel size, Å.
        parametrisation: scattering factors, ``"lobato"`` or ``"kirkland"``.
        species: atomic numbers on the grid (static); default those of the present sites.

    Returns:
        (h, w) image intensity (1 for vacuum).
    """
    shape, pixel = specimen_grid(specimen, sampling)
    potential = projected_potential(
        specimen, shape, pixel, parametrisation=parametrisation, species=species
    )
    return _ctf_image(lens, potential, pixel)


@eqx.filter_jit
def _ctf_image(lens: Probe, potential, sampling):
    grating = transmission_function(potential, lens.energy_kev, sampling)
    ky, kx = spatial_frequencies(potential.shape, sampling)
    transfer = lens.aperture(ky, kx) * jnp.exp(-1j * lens.phase(ky, kx))
    return jnp.abs(jnp.fft.ifft2(jnp.fft.fft2(grating) * transfer)) ** 2
