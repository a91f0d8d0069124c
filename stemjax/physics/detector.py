"""Annular detectors and the angular range a sampled wave can represent."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from stemjax._validation import check_less, check_nonnegative, check_positive, is_concrete
from stemjax.physics.constants import wavelength
from stemjax.physics.probe import _pair, spatial_frequencies


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
        anti-aliasing, i.e. when λ/(3Δx) < outer angle for the coarser axis.
        """
        coarsest = max(_pair(sampling))
        if is_concrete(self.outer_mrad):
            reach = float(max_scattering_angle(coarsest, energy_kev))
            outer = float(self.outer_mrad)
            if reach < outer:
                needed = 1e3 * float(wavelength(energy_kev)) / (3.0 * outer)
                raise ValueError(
                    f"sampling {coarsest} Å is too coarse for the detector's outer angle "
                    f"{outer} mrad at {energy_kev} keV: it reaches {reach:.1f} mrad after 2/3 "
                    f"anti-aliasing; sampling must be <= {needed:.4f} Å"
                )
        pattern = jnp.asarray(pattern)
        ky, kx = spatial_frequencies(pattern.shape, sampling)
        angle_mrad = 1e3 * wavelength(energy_kev) * jnp.sqrt(kx**2 + ky**2)
        inside = (angle_mrad >= self.inner_mrad) & (angle_mrad < self.outer_mrad)
        return jnp.sum(jnp.where(inside, pattern, 0.0))
