"""Recording an image: dose, scan distortion, shot noise and detector readout.

``acquire`` chains the physics of one frame::

    path   = distorted_path(key₁, grid, distortion, dwell)          # where the probe went
    f      = model.render(specimen, path)                           # fraction to the detector
    mean   = electrons_per_position(current, dwell) · f             # expected counts
    counts = Poisson(mean)  (or its relaxation, for gradients)       # shot noise
    image  = gain · counts + offset + read_noise · N(0, 1)           # readout
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from stemjax._validation import check_finite, check_nonnegative, check_positive
from stemjax.physics.dose import electrons_per_position
from stemjax.physics.haadf import IncoherentImaging
from stemjax.physics.noise import (
    detector_readout,
    poisson_counts,
    poisson_relaxed,
    poisson_straight_through,
)
from stemjax.physics.scan import ScanDistortion, ScanGrid, ScanPath, distorted_path
from stemjax.physics.specimen import Specimen

_NOISE = {
    "poisson": poisson_counts,
    "relaxed": poisson_relaxed,
    "straight_through": poisson_straight_through,
    "none": lambda key, mean: mean,
}


class Acquisition(eqx.Module):
    """Settings of one recorded frame.

    Attributes:
        current_pA: beam current, pA.
        dwell_us: dwell time per probe position, µs.
        distortion: drift, line jitter and flyback of the scan.
        gain: detector output per detected electron.
        read_noise: standard deviation of the detector's additive noise, output units.
        offset: dark level added to every reading, output units.
        noise: shot noise model (static): ``"poisson"`` (exact), ``"relaxed"`` (Gaussian,
            differentiable), ``"straight_through"`` (exact forward, relaxed gradient) or
            ``"none"`` (expected counts).
    """

    current_pA: Float[Array, ""]
    dwell_us: Float[Array, ""]
    distortion: ScanDistortion
    gain: Float[Array, ""]
    read_noise: Float[Array, ""]
    offset: Float[Array, ""]
    noise: str = eqx.field(static=True)

    def __init__(
        self,
        current_pA: float = 30.0,
        dwell_us: float = 10.0,
        distortion: ScanDistortion | None = None,
        gain: float = 1.0,
        read_noise: float = 0.0,
        offset: float = 0.0,
        noise: str = "poisson",
    ):
        check_nonnegative("current_pA", current_pA, "pA")
        check_positive("dwell_us", dwell_us, "µs")
        check_positive("gain", gain)
        check_nonnegative("read_noise", read_noise)
        check_finite("offset", offset)
        if noise not in _NOISE:
            raise ValueError(f"noise must be one of {sorted(_NOISE)}; got {noise!r}")
        dtype = jnp.result_type(float)
        self.current_pA = jnp.asarray(current_pA, dtype)
        self.dwell_us = jnp.asarray(dwell_us, dtype)
        self.distortion = ScanDistortion() if distortion is None else distortion
        self.gain = jnp.asarray(gain, dtype)
        self.read_noise = jnp.asarray(read_noise, dtype)
        self.offset = jnp.asarray(offset, dtype)
        self.noise = noise

    @property
    def electrons_per_position(self) -> Float[Array, ""]:
        """Electrons delivered at each probe position, I·τ/e."""
        return electrons_per_position(self.current_pA, self.dwell_us)


class Recording(eqx.Module):
    """One recorded frame.

    Attributes:
        image: (h, w) detector readout, output units (gain × counts + offset + read noise).
        expected_counts: (h, w) mean detected electrons per position.
        path: the probe positions actually visited.
        dose: areal dose of the frame, e⁻/Å² (electrons per position / step²).
    """

    image: Float[Array, "h w"]
    expected_counts: Float[Array, "h w"]
    path: ScanPath
    dose: Float[Array, ""]


def acquire(
    key: PRNGKeyArray,
    model: IncoherentImaging,
    specimen: Specimen,
    grid: ScanGrid,
    acquisition: Acquisition,
) -> Recording:
    """Record one frame of ``specimen`` over ``grid``.

    Differentiable in the specimen, the probe and ``acquisition.current_pA`` (dose scale)
    with ``noise="relaxed"``, ``"straight_through"`` or ``"none"``.

    Args:
        key: PRNG key (split for jitter, shot noise and read noise).
        model: imaging model (probe, detector, cross-sections).
        specimen: what is imaged.
        grid: the commanded raster.
        acquisition: current, dwell, distortion, detector and noise settings.
    """
    key_path, key_shot, key_read = jax.random.split(key, 3)
    path = distorted_path(key_path, grid, acquisition.distortion, acquisition.dwell_us)
    electrons = acquisition.electrons_per_position
    expected = electrons * model.render(specimen, path)
    counts = _NOISE[acquisition.noise](key_shot, expected)
    image = detector_readout(
        key_read, counts, acquisition.gain, acquisition.read_noise, acquisition.offset
    )
    return Recording(image, expected, path, electrons / grid.step**2)
