"""Annular detectors, radial binning and the angular range a sampled wave can represent."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from stemjax._validation import check_less, check_nonnegative, check_positive, is_concrete
from stemjax.physics.constants import wavelength
from stemjax.physics.probe import _pair, spatial_frequencies


STEMGYM_HAADF = (68.0, 200.0)
"""Inner and outer angles of the STEMGym HAADF detector, mrad (shared/papers/000, app. C)."""


def max_scattering_angle(sampling: ArrayLike, energy_kev: ArrayLike) -> Array:
    """Largest scattering angle kept after 2/3 anti-aliasing, λ/(3Δx), mrad.

    Args:
        sampling: real-space pixel size Δx, Å.
        energy_kev: beam energy, keV.
    """
    check_positive("sampling", sampling, "Å")
    return 1e3 * wavelength(energy_kev) / (3.0 * jnp.asarray(sampling))


class AnnularDetector(eqx.Module):
    """An annular detector collecting scattering angles in [inner, outer), mrad.

    ``outer_mrad`` may be ``inf`` for a detector that collects everything beyond ``inner``.
    The STEMGym HAADF detector is ``AnnularDetector(68.0, 200.0)``; a bright-field detector
    matched to the probe is ``AnnularDetector(0.0, semiangle_mrad)``.
    """

    inner_mrad: Float[Array, ""]
    outer_mrad: Float[Array, ""]

    def __init__(self, inner_mrad: float, outer_mrad: float):
        check_nonnegative("inner_mrad", inner_mrad, "mrad")
        if is_concrete(outer_mrad) and np.isnan(outer_mrad):
            raise ValueError(f"outer_mrad must be a number > inner_mrad; got {outer_mrad!r}")
        check_less("inner_mrad", inner_mrad, "outer_mrad", outer_mrad, "mrad")
        dtype = jnp.result_type(float)
        self.inner_mrad = jnp.asarray(inner_mrad, dtype)
        self.outer_mrad = jnp.asarray(outer_mrad, dtype)

    @classmethod
    def preset(cls, name: str, semiangle_mrad: float = 21.0) -> AnnularDetector:
        """A conventional detector for a probe of convergence semi-angle α (mrad).

        ``"BF"`` [0, α), ``"ABF"`` [α/2, α), ``"MAADF"`` [2α, 68) and ``"HAADF"`` [68, 200)
        mrad (the STEMGym HAADF detector). MAADF needs α < 34 mrad.
        """
        check_positive("semiangle_mrad", semiangle_mrad, "mrad")
        alpha = float(semiangle_mrad)
        angles = {
            "BF": (0.0, alpha),
            "ABF": (0.5 * alpha, alpha),
            "MAADF": (2.0 * alpha, STEMGYM_HAADF[0]),
            "HAADF": STEMGYM_HAADF,
        }
        if name not in angles:
            raise ValueError(f"name must be one of {tuple(angles)}; got {name!r}")
        return cls(*angles[name])

    def mask(self, shape: tuple[int, int], sampling, energy_kev: float) -> Float[Array, "h w"]:
        """(h, w) 1 where the reciprocal-space pixel (FFT order) lies in [inner, outer), else 0.

        Args:
            shape: (rows, columns) of the wave's grid.
            sampling: real-space pixel size of the wave, Å (scalar or (row, column)).
            energy_kev: beam energy, keV.

        Raises ValueError when the grid cannot represent the outer angle after 2/3
        anti-aliasing (λ/(3Δx) < outer angle for the coarser axis); an infinite outer angle
        means "everything the grid keeps".
        """
        self._check_reach(sampling, energy_kev)
        angle_mrad = _angles_mrad(tuple(shape), sampling, energy_kev)
        inside = (angle_mrad >= self.inner_mrad) & (angle_mrad < self.outer_mrad)
        return inside.astype(self.inner_mrad.dtype)

    def _check_reach(self, sampling, energy_kev: float) -> None:
        coarsest = max(_pair(sampling))
        if is_concrete(self.outer_mrad) and np.isfinite(float(self.outer_mrad)):
            reach = float(max_scattering_angle(coarsest, energy_kev))
            outer = float(self.outer_mrad)
            if reach < outer:
                needed = 1e3 * float(wavelength(energy_kev)) / (3.0 * outer)
                raise ValueError(
                    f"sampling {coarsest} Å is too coarse for the detector's outer angle "
                    f"{outer} mrad at {energy_kev} keV: it reaches {reach:.1f} mrad after 2/3 "
                    f"anti-aliasing; sampling must be <= {needed:.4f} Å"
                )

    def integrate(
        self, pattern: Float[ArrayLike, "h w"], sampling, energy_kev: float
    ) -> Float[Array, ""]:
        """Sum of a diffraction intensity over the detector's annulus.

        Args:
            pattern: (h, w) intensity in reciprocal space, FFT order (as returned by
                ``Probe.diffraction_pattern``), of a wave sampled at ``sampling``.
            sampling: real-space pixel size of that wave, Å (scalar or (row, column)).
            energy_kev: beam energy, keV.

        Raises ValueError when the grid cannot represent the outer angle after 2/3
        anti-aliasing, i.e. when λ/(3Δx) < outer angle for the coarser axis (an infinite
        outer angle means "everything the grid keeps").
        """
        self._check_reach(sampling, energy_kev)
        pattern = jnp.asarray(pattern)
        angle_mrad = _angles_mrad(pattern.shape, sampling, energy_kev)
        inside = (angle_mrad >= self.inner_mrad) & (angle_mrad < self.outer_mrad)
        return jnp.sum(jnp.where(inside, pattern, 0.0))


def _angles_mrad(shape: tuple[int, int], sampling, energy_kev: float) -> Array:
    """(h, w) scattering angle of each reciprocal-space pixel (FFT order), mrad."""
    ky, kx = spatial_frequencies(shape, sampling)
    return 1e3 * wavelength(energy_kev) * jnp.sqrt(kx**2 + ky**2)


def radial_bins(
    shape: tuple[int, int], sampling, energy_kev: float, bin_mrad: float = 1.0
) -> tuple[Array, int]:
    """Bin index of each reciprocal-space pixel for 1-mrad (``bin_mrad``) radial binning.

    Bin k collects angles in [k·bin_mrad, (k + 1)·bin_mrad) for the bins that lie wholly
    within the 2/3 anti-aliasing limit λ/(3Δx); other pixels get index ``n_bins`` (dropped).

    Returns:
        ((h, w) int32 bin index in FFT order, n_bins).
    """
    check_positive("bin_mrad", bin_mrad, "mrad")
    reach = float(max_scattering_angle(max(_pair(sampling)), energy_kev))
    n_bins = int(np.floor(reach / float(bin_mrad)))
    if n_bins < 1:
        raise ValueError(
            f"bin_mrad must be <= the largest angle the grid keeps ({reach:.1f} mrad); "
            f"got {bin_mrad}"
        )
    index = jnp.floor(_angles_mrad(tuple(shape), sampling, energy_kev) / bin_mrad)
    return jnp.where(index < n_bins, index, n_bins).astype(jnp.int32), n_bins


def radial_profile(
    pattern: Float[ArrayLike, "h w"], sampling, energy_kev: float, bin_mrad: float = 1.0
) -> Float[Array, " n_bins"]:
    """Diffraction intensity summed in rings of width ``bin_mrad`` (mrad), from 0 outwards.

    Args:
        pattern: (h, w) intensity in reciprocal space, FFT order.
        sampling: real-space pixel size of the wave, Å (scalar or (row, column)).
        energy_kev: beam energy, keV.
        bin_mrad: ring width, mrad; ring k spans [k·bin_mrad, (k + 1)·bin_mrad).

    Returns:
        (n_bins,) intensity per ring, out to the last ring inside λ/(3Δx).
    """
    pattern = jnp.asarray(pattern)
    index, n_bins = radial_bins(pattern.shape, sampling, energy_kev, bin_mrad)
    return jax.ops.segment_sum(pattern.ravel(), index.ravel(), num_segments=n_bins + 1)[:n_bins]
