"""The STEM probe: aperture, polar aberrations to 5th order and partial coherence.

Aberrations follow the polar (Krivanek) notation used by abTEM and most STEM codes:

    χ(α, φ) = (2π/λ) Σ_{n,m} C_{n,m} α^{n+1} / (n+1) · cos(m (φ − φ_{n,m}))

with α the scattering angle (rad), φ its azimuth, C_{n,m} in Å and φ_{n,m} in rad.
Defocus = −C10 (positive defocus is underfocus) and Cs = C30 (see shared/reference/checks.md).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Complex, Float

from stemjax._validation import (
    check_finite,
    check_int_at_least,
    check_nonnegative,
    check_positive,
    is_concrete,
)
from stemjax.physics.constants import wavelength

# (n, m) of each polar aberration term, lowest order first.
_ORDERS = ((1, 0), (1, 2), (2, 1), (2, 3), (3, 0), (3, 2), (3, 4),
           (4, 1), (4, 3), (4, 5), (5, 0), (5, 2), (5, 4), (5, 6))  # fmt: skip
ABERRATION_SYMBOLS: tuple[str, ...] = tuple(
    symbol
    for n, m in _ORDERS
    for symbol in ((f"C{n}{m}",) if m == 0 else (f"C{n}{m}", f"phi{n}{m}"))
)
"""Names of the polar aberration coefficients: magnitudes ``Cnm`` (Å), angles ``phinm`` (rad)."""

_ALIASES = {"Cs": ("C30", 1.0), "C5": ("C50", 1.0), "defocus": ("C10", -1.0)}
_INDEX = {symbol: i for i, symbol in enumerate(ABERRATION_SYMBOLS)}
_MAGNITUDE_INDEX = np.array([_INDEX[f"C{n}{m}"] for n, m in _ORDERS], dtype=np.int32)
_ANGLE_INDEX = np.array([_INDEX.get(f"phi{n}{m}", 0) for n, m in _ORDERS], dtype=np.int32)
_N = np.array([n for n, _ in _ORDERS], dtype=float)
_M = np.array([m for _, m in _ORDERS], dtype=float)


def _coefficient_vector(aberrations: dict[str, float], dtype) -> Array:
    values = jnp.zeros(len(ABERRATION_SYMBOLS), dtype)
    for name, value in aberrations.items():
        symbol, sign = _ALIASES.get(name, (name, 1.0))
        if symbol not in _INDEX:
            raise ValueError(
                f"aberrations has an unknown name {name!r}; allowed: "
                f"{', '.join(ABERRATION_SYMBOLS + tuple(_ALIASES))}"
            )
        check_finite(f"aberrations[{name!r}]", value)
        values = values.at[_INDEX[symbol]].set(sign * jnp.asarray(value, dtype))
    return values


def _pair(sampling) -> tuple[float, float]:
    """(row, column) spacing from a scalar or a pair, Å."""
    row, col = np.broadcast_to(np.asarray(sampling, dtype=float), (2,))
    return float(row), float(col)


def spatial_frequencies(shape: tuple[int, int], sampling) -> tuple[Array, Array]:
    """(ky, kx), each (h, w), of an FFT grid in FFT order, Å⁻¹.

    Args:
        shape: (rows, columns) of the real-space grid.
        sampling: real-space pixel size, Å; a scalar or (row, column) pair.
    """
    dy, dx = _pair(sampling)
    ky = jnp.fft.fftfreq(shape[0], dy)
    kx = jnp.fft.fftfreq(shape[1], dx)
    return jnp.meshgrid(ky, kx, indexing="ij")


class Probe(eqx.Module):
    """A focused STEM probe.

    Attributes:
        energy_kev: beam energy, keV (static: it sets grid sizes).
        semiangle_mrad: convergence semi-angle α of the aperture, mrad (static).
        aperture_edge_mrad: width of the linear soft edge of the aperture, mrad (static); the
            edge is never narrower than one reciprocal pixel, which anti-aliases the aperture.
        coefficients: (25,) polar aberration coefficients in the order of
            ``ABERRATION_SYMBOLS``: magnitudes in Å, angles in rad.
        focal_spread: 1σ spread of defocus from chromatic aberration and energy spread, Å.
        source_size: 1σ of the Gaussian image of the source at the specimen, Å.
        focal_points: Gauss–Hermite nodes over the focal spread (static; 1 without spread).
    """

    energy_kev: float = eqx.field(static=True)
    semiangle_mrad: float = eqx.field(static=True)
    aperture_edge_mrad: float = eqx.field(static=True)
    coefficients: Float[Array, "25"]
    focal_spread: Float[Array, ""]
    source_size: Float[Array, ""]
    focal_points: int = eqx.field(static=True)

    def __init__(
        self,
        energy_kev: float = 200.0,
        semiangle_mrad: float = 21.0,
        *,
        aberrations: dict[str, float] | None = None,
        aperture_edge_mrad: float = 0.0,
        focal_spread: float = 0.0,
        source_size: float = 0.0,
        focal_points: int = 7,
    ):
        """Args as in the class attributes; ``aberrations`` maps names of
        ``ABERRATION_SYMBOLS`` (or the aliases ``defocus`` = −C10, ``Cs`` = C30, ``C5`` = C50)
        to values in Å and rad. ``focal_points`` is used only when ``focal_spread`` > 0."""
        check_positive("energy_kev", energy_kev, "keV")
        check_positive("semiangle_mrad", semiangle_mrad, "mrad")
        check_nonnegative("aperture_edge_mrad", aperture_edge_mrad, "mrad")
        check_nonnegative("focal_spread", focal_spread, "Å")
        check_nonnegative("source_size", source_size, "Å")
        check_int_at_least("focal_points", focal_points, 1)
        dtype = jnp.result_type(float)
        self.energy_kev = float(energy_kev)
        self.semiangle_mrad = float(semiangle_mrad)
        self.aperture_edge_mrad = float(aperture_edge_mrad)
        self.coefficients = _coefficient_vector(aberrations or {}, dtype)
        self.focal_spread = jnp.asarray(focal_spread, dtype)
        self.source_size = jnp.asarray(source_size, dtype)
        no_spread = is_concrete(focal_spread) and np.all(np.asarray(focal_spread) == 0)
        self.focal_points = 1 if no_spread else int(focal_points)

    @property
    def wavelength(self) -> float:
        """Electron wavelength λ, Å (a Python float, also under ``jit``)."""
        with jax.ensure_compile_time_eval():
            return float(wavelength(self.energy_kev))

    @property
    def defocus(self) -> Float[Array, ""]:
        """Defocus = −C10, Å."""
        return -self.coefficients[_INDEX["C10"]]

    def aberration(self, name: str) -> Float[Array, ""]:
        """The coefficient ``name`` (a symbol or alias), Å or rad."""
        symbol, sign = _ALIASES.get(name, (name, 1.0))
        if symbol not in _INDEX:
            raise ValueError(f"name must be one of {ABERRATION_SYMBOLS}; got {name!r}")
        return sign * self.coefficients[_INDEX[symbol]]

    def with_aberrations(self, **aberrations: ArrayLike) -> Probe:
        """A copy with the named coefficients replaced (symbols or aliases, Å and rad)."""
        new = _coefficient_vector(aberrations, self.coefficients.dtype)
        replaced = _coefficient_vector({k: 1.0 for k in aberrations}, self.coefficients.dtype)
        coefficients = jnp.where(replaced != 0, new, self.coefficients)
        return eqx.tree_at(lambda p: p.coefficients, self, coefficients)

    def phase(self, ky: ArrayLike, kx: ArrayLike, defocus_offset: ArrayLike = 0.0) -> Array:
        """Aberration phase χ at spatial frequencies (ky, kx) in Å⁻¹, rad.

        ``defocus_offset`` (Å) is added to the defocus (i.e. subtracted from C10).
        """
        lam = self.wavelength
        alpha = lam * jnp.sqrt(kx**2 + ky**2)
        azimuth = jnp.arctan2(ky, kx)
        c = self.coefficients
        n, m = jnp.asarray(_N, c.dtype), jnp.asarray(_M, c.dtype)
        magnitude = c[_MAGNITUDE_INDEX] - jnp.where(n * 10 + m == 10, defocus_offset, 0.0)
        angle = jnp.where(m == 0, 0.0, c[_ANGLE_INDEX])
        terms = (
            magnitude
            * alpha[..., None] ** (n + 1)
            / (n + 1)
            * jnp.cos(m * (azimuth[..., None] - angle))
        )
        return 2 * jnp.pi / lam * jnp.sum(terms, axis=-1)

    def aperture(self, ky: ArrayLike, kx: ArrayLike, edge_mrad: ArrayLike = 0.0) -> Array:
        """Aperture transmission in [0, 1] at (ky, kx) Å⁻¹, linear over the soft edge.

        ``edge_mrad`` is a lower bound on the edge width (e.g. one reciprocal pixel).
        """
        alpha_mrad = 1e3 * self.wavelength * jnp.sqrt(kx**2 + ky**2)
        width = jnp.maximum(jnp.maximum(self.aperture_edge_mrad, edge_mrad), 1e-6)
        return jnp.clip((self.semiangle_mrad - alpha_mrad) / width + 0.5, 0.0, 1.0)

    def _focal_nodes(self) -> tuple[Array, Array]:
        """Defocus offsets (Å) and weights of the Gauss–Hermite rule over the focal spread."""
        x, w = np.polynomial.hermite.hermgauss(self.focal_points)
        return np.sqrt(2.0) * x * self.focal_spread, jnp.asarray(w / np.sqrt(np.pi))

    def wave_fourier(
        self, shape: tuple[int, int], sampling, defocus_offset: ArrayLike = 0.0
    ) -> Complex[Array, "h w"]:
        """Coherent probe wave in reciprocal space, FFT order, centred at real-space pixel 0.

        Normalised so that its real-space intensity ``|ifft2(ψ)|²`` sums to 1.

        Args:
            shape: (rows, columns) of the grid.
            sampling: real-space pixel size, Å (scalar or (row, column)).
            defocus_offset: added to the defocus, Å.
        """
        ky, kx = spatial_frequencies(shape, sampling)
        dy, dx = _pair(sampling)
        pixel_mrad = 1e3 * self.wavelength / max(shape[0] * dy, shape[1] * dx)
        amplitude = self.aperture(ky, kx, pixel_mrad)
        norm = jnp.sqrt(shape[0] * shape[1] / jnp.sum(amplitude**2))
        return norm * amplitude * jnp.exp(-1j * self.phase(ky, kx, defocus_offset))

    def diffraction_pattern(self, shape: tuple[int, int], sampling) -> Float[Array, "h w"]:
        """Intensity of the probe in reciprocal space, FFT order, summing to 1.

        Averaged over the focal spread (the source size does not change it).
        """
        offsets, weights = self._focal_nodes()
        total = 0.0
        for offset, weight in zip(offsets, weights):
            total = total + weight * jnp.abs(self.wave_fourier(shape, sampling, offset)) ** 2
        return total / jnp.sum(total)

    def intensity_spectrum(self, shape: tuple[int, int], sampling) -> Complex[Array, "h w"]:
        """Fourier transform of the real-space probe intensity, FFT order; value 1 at k = 0.

        Includes the focal spread (incoherent sum over Gauss–Hermite nodes) and the source size
        (multiplication by the Gaussian exp(−2π²s²k²)). The intensity is band-limited to
        |k| ≤ 2α/λ, so ``sampling`` must be ≤ λ/(4α) to avoid aliasing (Nyquist).
        """
        offsets, weights = self._focal_nodes()
        intensity = 0.0
        for offset, weight in zip(offsets, weights):
            wave = jnp.fft.ifft2(self.wave_fourier(shape, sampling, offset))
            intensity = intensity + weight * jnp.abs(wave) ** 2
        ky, kx = spatial_frequencies(shape, sampling)
        blur = jnp.exp(-2 * jnp.pi**2 * self.source_size**2 * (kx**2 + ky**2))
        spectrum = jnp.fft.fft2(intensity) * blur
        return spectrum / spectrum[0, 0]

    def intensity(self, shape: tuple[int, int], sampling) -> Float[Array, "h w"]:
        """Real-space probe intensity centred on pixel (h // 2, w // 2), summing to 1.

        Args:
            shape: (rows, columns) of the grid.
            sampling: pixel size, Å (scalar or (row, column)); ≤ λ/(4α) for an unaliased
                intensity (see :func:`nyquist_probe_step`).
        """
        check_positive("sampling", sampling, "Å")
        return _centred_intensity(self, tuple(shape), _pair(sampling))


@eqx.filter_jit
def _centred_intensity(probe: Probe, shape: tuple[int, int], sampling) -> Array:
    return jnp.fft.fftshift(jnp.fft.ifft2(probe.intensity_spectrum(shape, sampling)).real)


def scherzer_defocus(cs: ArrayLike, energy_kev: ArrayLike) -> Array:
    """Scherzer defocus √(1.5 Cs λ), Å, for spherical aberration ``cs`` (Å)."""
    check_positive("cs", cs, "Å")
    return jnp.sqrt(1.5 * jnp.asarray(cs) * wavelength(energy_kev))


def point_resolution(cs: ArrayLike, energy_kev: ArrayLike) -> Array:
    """Point resolution (λ³ Cs / 6)^¼, Å, for spherical aberration ``cs`` (Å)."""
    check_positive("cs", cs, "Å")
    return (wavelength(energy_kev) ** 3 * jnp.asarray(cs) / 6.0) ** 0.25


def nyquist_probe_step(energy_kev: ArrayLike, semiangle_mrad: ArrayLike) -> Array:
    """Largest probe step that samples a STEM image without aliasing, λ/(4α), Å."""
    check_positive("semiangle_mrad", semiangle_mrad, "mrad")
    return wavelength(energy_kev) / (4e-3 * jnp.asarray(semiangle_mrad))
