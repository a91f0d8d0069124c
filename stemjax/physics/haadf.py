"""Fast incoherent annular dark-field imaging.

The model (incoherent linear imaging with a Beer–Lambert closure):

1. Each site scatters beyond the probe cone (angles > α) with cross-section
   ``c · occ · σ(Z; α, ∞)``, where c is the number of atoms in the column, occ the occupancy
   and σ the small-angle Rutherford cross-section integrated over an annulus [a, b] with Z²
   replaced by the empirical Z^n law (n ≈ 1.7; Krivanek et al., Nature 464, 571 (2010)):

       σ(Z; a, b) = 4π γ² Z^n / (a₀² k⁴) · (1/a² − 1/b²),   k = 2π/λ.

   Thermal vibration smears each site by a Gaussian of variance B/(8π²) per axis.
2. The scattering depth under a probe at p is τ(p) = Σ_i σ_i ρ(r_i − p), with ρ the probe
   intensity per Å². A fraction 1 − e^{−τ} of the electrons is scattered beyond α and shared
   among annuli in proportion to their Rutherford weights (1/a² − 1/b²); the rest, e^{−τ},
   stays in the bright-field cone, which it fills uniformly. Every electron lands somewhere,
   so detectors that tile [0, ∞) collect exactly the incident dose.

τ is computed exactly for a band-limited probe: the probe intensity has no Fourier
components beyond 2α/λ, so τ is a finite Fourier series on a window of size
(field of view + 2 × margin), evaluated with separable (matrix-product) transforms. Sites
farther than ``margin`` from the scanned area are ignored; probe tails beyond ``margin``
are lost. The cost grows with the field of view and the number of sites, not with the
sampling.

With ``calibration="multislice"`` the model instead sums per-column detector cross-sections
fitted to frozen-phonon multislice (:mod:`stemjax.physics.calibration`).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from stemjax._validation import check_finite, check_positive, is_concrete
from stemjax.physics.calibration import (
    CALIBRATION_EXPONENT,
    ColumnCalibration,
    load_calibration,
)
from stemjax.physics.constants import BOHR_RADIUS_ANGSTROM, lorentz_factor, wavelength
from stemjax.physics.detector import STEMGYM_HAADF, AnnularDetector
from stemjax.physics.probe import Probe
from stemjax.physics.scan import ScanGrid, ScanPath
from stemjax.physics.specimen import Specimen


def annular_cross_section(
    atomic_number: ArrayLike,
    inner_mrad: ArrayLike,
    outer_mrad: ArrayLike,
    energy_kev: float,
    exponent: ArrayLike = 1.7,
) -> Array:
    """Scattering cross-section of one atom into the annulus [inner, outer), Å².

    The small-angle Rutherford form with Z² replaced by Z^n (see the module docstring).
    ``outer_mrad`` may be ``inf``. Angles must lie beyond the unscreened-core region
    (tens of mrad), where the law holds.
    """
    with jax.ensure_compile_time_eval():
        lam = float(wavelength(energy_kev))
        gamma = float(lorentz_factor(energy_kev))
    k = 2.0 * math.pi / lam
    prefactor = 4.0 * math.pi * gamma**2 / (BOHR_RADIUS_ANGSTROM**2 * k**4)
    weight = _rutherford_weight(inner_mrad, outer_mrad)
    return prefactor * 1e6 * weight * jnp.asarray(atomic_number, float) ** exponent


def _rutherford_weight(inner_mrad, outer_mrad) -> Array:
    """1/a² − 1/b² in mrad⁻² (0 for an empty annulus)."""
    a, b = jnp.asarray(inner_mrad, float), jnp.asarray(outer_mrad, float)
    return jnp.where(b > a, 1.0 / a**2 - 1.0 / b**2, 0.0)


class IncoherentImaging(eqx.Module):
    """Incoherent annular-dark-field imaging of a specimen by a probe.

    Attributes:
        probe: the focused probe.
        detector: the annular detector whose signal ``render`` returns.
        exponent: n of the Z^n cross-section law (≈1.7 for HAADF).
        margin: distance beyond the scanned area within which sites and probe tails are
            kept, Å (static).
        calibration: None (the Rutherford/Beer–Lambert model) or the multislice correction
            table for this probe and detector, which ``render`` then uses (see
            :mod:`stemjax.physics.calibration`).
    """

    probe: Probe
    detector: AnnularDetector
    exponent: Float[Array, ""]
    margin: float = eqx.field(static=True)
    calibration: ColumnCalibration | None

    def __init__(
        self,
        probe: Probe,
        detector: AnnularDetector | None = None,
        exponent: float = 1.7,
        margin: float = 10.0,
        calibration: str | ColumnCalibration | None = None,
    ):
        """Args as in the attributes; ``calibration="multislice"`` loads the shipped table for
        the probe's energy and semi-angle and the detector (ValueError if there is none), and
        then ``exponent`` must stay 1.7, the law the table corrects."""
        check_positive("exponent", exponent)
        check_positive("margin", margin, "Å")
        self.probe = probe
        self.detector = AnnularDetector(*STEMGYM_HAADF) if detector is None else detector
        self.exponent = jnp.asarray(exponent, jnp.result_type(float))
        self.margin = float(margin)
        self.calibration = _calibration(calibration, probe, self.detector, exponent)

    def scattering_depth(self, specimen: Specimen, scan: ScanGrid | ScanPath) -> Array:
        """(h, w) scattering depth τ beyond the probe cone at each probe position.

        Args:
            specimen: the sites to image.
            scan: a raster (imaged along its undistorted path) or a recorded ``ScanPath``.
        """
        path = scan.path() if isinstance(scan, ScanGrid) else scan
        check_finite("scan.line_x0", path.line_x0)
        check_finite("scan.line_y", path.line_y)
        return _scattering_depth(self, specimen, path)

    def detector_fraction(
        self, detector: AnnularDetector, tau: Float[ArrayLike, "..."]
    ) -> Float[Array, "..."]:
        """Fraction of incident electrons that ``detector`` collects at scattering depth τ.

        Bright-field part: the unscattered e^{−τ} spread uniformly over the cone [0, α];
        dark-field part: 1 − e^{−τ} shared in proportion to 1/a² − 1/b² beyond α.
        """
        alpha = self.probe.semiangle_mrad
        inner, outer = detector.inner_mrad, detector.outer_mrad
        cone = (jnp.minimum(outer, alpha) ** 2 - jnp.minimum(inner, alpha) ** 2) / alpha**2
        beyond = _rutherford_weight(jnp.maximum(inner, alpha), jnp.maximum(outer, alpha))
        tau = jnp.asarray(tau)
        return cone * jnp.exp(-tau) - beyond * alpha**2 * jnp.expm1(-tau)

    def render(self, specimen: Specimen, scan: ScanGrid | ScanPath) -> Float[Array, "h w"]:
        """(h, w) fraction of incident electrons reaching ``self.detector`` at each position.

        Calibrated: Σ_i c_i occ_i f(Z_i; c_i) σ(Z_i; inner, outer) ρ_B(r_i − p) (no closure);
        raises ValueError for elements the table does not cover."""
        if self.calibration is None:
            return self.detector_fraction(self.detector, self.scattering_depth(specimen, scan))
        self.calibration.check_elements(specimen.atomic_numbers, specimen.present)
        path = scan.path() if isinstance(scan, ScanGrid) else scan
        check_finite("scan.line_x0", path.line_x0)
        check_finite("scan.line_y", path.line_y)
        return _scattering_depth(self, specimen, path, True)


def _calibration(calibration, probe: Probe, detector: AnnularDetector, exponent):
    """The ColumnCalibration for ``IncoherentImaging(calibration=...)``, or None."""
    if calibration is None:
        return None
    if is_concrete(exponent) and not np.allclose(exponent, CALIBRATION_EXPONENT):
        raise ValueError(f"exponent must be {CALIBRATION_EXPONENT} with a calibration (the "
                         f"table corrects that Z law); got {exponent!r}")  # fmt: skip
    if isinstance(calibration, ColumnCalibration):
        if not calibration.matches(probe.energy_kev, probe.semiangle_mrad, detector):
            raise ValueError(
                f"calibration is for {calibration.describe()}, not for this probe "
                f"({probe.energy_kev:g} keV, {probe.semiangle_mrad:g} mrad) and detector "
                f"({float(detector.inner_mrad):g}-{float(detector.outer_mrad):g} mrad)"
            )
        return calibration
    if not isinstance(calibration, str):
        raise ValueError(f"calibration must be None, 'multislice' or a ColumnCalibration; "
                         f"got {calibration!r}")  # fmt: skip
    return load_calibration(probe.energy_kev, probe.semiangle_mrad, detector, calibration)


@eqx.filter_jit
def _scattering_depth(
    model: IncoherentImaging, specimen: Specimen, path: ScanPath, calibrated: bool = False
) -> Array:
    """Compiled body of ``IncoherentImaging.scattering_depth`` (inputs already validated);
    with ``calibrated``, the calibrated detector signal instead."""
    rows, cols = path.shape
    step = path.nominal_step
    probe = model.probe
    lam = probe.wavelength
    size_y = rows * step + 2 * model.margin
    size_x = cols * step + 2 * model.margin
    # the intensity band 2α/λ, widened by half the aperture's soft edge
    edge_mrad = max(probe.aperture_edge_mrad, 1e3 * lam / max(size_x, size_y))
    band = 2e-3 * (probe.semiangle_mrad + 0.5 * edge_mrad) / lam  # Å⁻¹
    m_y, m_x = math.ceil(band * size_y), math.ceil(band * size_x)
    ky = np.arange(-m_y, m_y + 1) / size_y
    kx = np.arange(-m_x, m_x + 1) / size_x

    # probe intensity spectrum at those frequencies, from an FFT grid that resolves them
    n_y, n_x = _fft_size(2 * m_y + 2), _fft_size(2 * m_x + 2)
    spectrum = probe.intensity_spectrum((n_y, n_x), (size_y / n_y, size_x / n_x))
    rows_k = (np.arange(-m_y, m_y + 1) % n_y).astype(np.int32)
    cols_k = (np.arange(-m_x, m_x + 1) % n_x).astype(np.int32)
    spectrum = spectrum[rows_k[:, None], cols_k[None, :]]

    # window origin: the scanned area's centre minus half the window
    centre_x = jnp.mean(path.line_x0) + 0.5 * (cols - 1) * path.x_step
    centre_y = jnp.mean(path.line_y)
    origin_x, origin_y = centre_x - 0.5 * size_x, centre_y - 0.5 * size_y
    x = specimen.positions[:, 0] - origin_x
    y = specimen.positions[:, 1] - origin_y
    inside = (x >= 0) & (x < size_x) & (y >= 0) & (y < size_y)
    z = jnp.where(specimen.present, specimen.atomic_numbers, 1)  # padding may hold Z = 0
    if calibrated:
        table = model.calibration
        z = jnp.where(specimen.present, z, table.elements[0])  # no NaN rows on padding
        factor = table.factor(z, specimen.counts)
        factor = eqx.error_if(factor, jnp.any(jnp.isnan(factor)),
                              "a present site's element is not in the calibration table")
        per_atom = factor * annular_cross_section(
            z, table.inner_mrad, table.outer_mrad, probe.energy_kev, CALIBRATION_EXPONENT
        )
    else:
        per_atom = annular_cross_section(
            z, probe.semiangle_mrad, jnp.inf, probe.energy_kev, model.exponent
        )
    sigma = specimen.counts * specimen.occupancies * per_atom
    weight = jnp.where(specimen.present & inside, sigma, 0.0)

    # structure factor S(ky, kx) = Σ w e^{2πi k·r} e^{−B k²/4}, separable in kx and ky
    b = specimen.debye_waller[:, None] / 4.0
    ex = jnp.exp(2j * jnp.pi * kx * x[:, None] - b * kx**2)  # (n, kx)
    ey = jnp.exp(2j * jnp.pi * ky * y[:, None] - b * ky**2)  # (n, ky)
    structure = (ey * weight[:, None]).T @ ex  # (ky, kx)
    coefficients = structure * spectrum / (size_x * size_y)

    # synthesis at the probe positions: line i at y_i, pixel j at x0_i + j·step_x
    line_y = path.line_y - origin_y
    line_x0 = path.line_x0 - origin_x
    per_line = jnp.exp(-2j * jnp.pi * line_y[:, None] * ky) @ coefficients  # (h, kx)
    per_line = per_line * jnp.exp(-2j * jnp.pi * line_x0[:, None] * kx)
    along = jnp.exp(-2j * jnp.pi * kx[:, None] * (jnp.arange(cols) * path.x_step))
    tau = jnp.maximum((per_line @ along).real, 0.0)

    # drift and jitter must leave the scanned positions well inside the window
    rows_i = jnp.arange(rows) - 0.5 * (rows - 1)
    offset_y = jnp.abs(line_y - (0.5 * size_y + rows_i * step))
    offset_x = jnp.abs(line_x0 - 0.5 * (size_x - (cols - 1) * step)) + (cols - 1) * jnp.abs(
        path.x_step - step
    )
    return eqx.error_if(
        tau,
        jnp.maximum(jnp.max(offset_y), jnp.max(offset_x)) > 0.5 * model.margin,
        "scan positions drift or jitter by more than margin/2 outside the commanded "
        "raster; increase IncoherentImaging.margin",
    )


def _fft_size(minimum: int) -> int:
    """Smallest even integer ≥ ``minimum`` whose prime factors are 2, 3 and 5."""
    n = minimum + minimum % 2
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 2
