"""Atomic sites in atomic-resolution HAADF images of 2H MX2 monolayers, and patches around them.

The lattice is measured from the image itself (its first-order Bragg peaks), so the pixel size
follows from the known lattice constant and no metadata are trusted. Sites are *predicted* from
the lattice, refined against a smooth displacement field fitted to the brighter columns, so
dark sites (vacancies, light dopants) are found as well as bright ones.

Coordinates are pixels, ``(x, y) = (column, row)``, with pixel centres at integers; lengths in
Å; spatial frequencies in cycles per pixel, ``(kx, ky)``.

Analysis of concrete images (:func:`hexagonal_lattice`, :func:`find_mx2_sites`,
:func:`find_peaks`) is numpy; :func:`extract_patches` is JAX and runs under ``jit``/``vmap``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float
from scipy import ndimage
from scipy.spatial import cKDTree

from stemjax._validation import check_finite, check_in_range, check_nonnegative, check_positive

__all__ = [
    "MX2Sites",
    "extract_patches",
    "find_mx2_sites",
    "find_peaks",
    "hexagonal_lattice",
    "pixel_size_from_lattice",
]

MIN_IMAGE_PX = 16  # smallest side of an image whose lattice is measured, px
MIN_PERIOD_PX = 3.0  # shortest first-order fringe period searched for, px
MIN_PERIODS = 4  # fewest fringe periods across the shorter side of the image
MIN_PEAK_CONTRAST = 8.0  # strongest / median Fourier amplitude of a lattice (noise: about 4)
METAL, CHALCOGEN = 0, 1


# --------------------------------------------------------------------------- validation


def _image(name: str, image) -> np.ndarray:
    """A concrete, finite 2-D float64 image at least MIN_IMAGE_PX on each side."""
    arr = np.asarray(image, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (rows, columns); got shape {arr.shape}")
    if min(arr.shape) < MIN_IMAGE_PX:
        raise ValueError(
            f"{name} must be at least {MIN_IMAGE_PX} x {MIN_IMAGE_PX} px; got shape {arr.shape}"
        )
    check_finite(name, arr)
    return arr


# --------------------------------------------------------------------------- lattice


def _zoom_dft(image: np.ndarray, kx: np.ndarray, ky: np.ndarray) -> np.ndarray:
    """|Fourier transform| of ``image`` at the frequencies ky[:, None], kx[None, :] (cycles/px)."""
    rows, cols = image.shape
    ey = np.exp(-2j * np.pi * np.outer(ky, np.arange(rows)))
    ex = np.exp(-2j * np.pi * np.outer(kx, np.arange(cols)))
    return np.abs(ey @ image @ ex.T)


def _refine_peak(image: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Sub-bin position (kx, ky) of the Fourier amplitude maximum nearest ``k``.

    Two zooms (9 × 9 frequencies over ±1 bin, then ±1/4 bin) of the windowed image's
    transform, each followed by a parabolic fit of log amplitude through the best frequency and
    its neighbours; precise to about 0.01 bin.
    """
    rows, cols = image.shape
    bins = np.array([1.0 / cols, 1.0 / rows])
    k = np.asarray(k, dtype=float)
    for half in (1.0, 0.25):
        steps = np.linspace(-half, half, 9)
        kx, ky = k[0] + steps * bins[0], k[1] + steps * bins[1]
        amp = np.log(_zoom_dft(image, kx, ky) + 1e-300)
        i, j = np.unravel_index(np.argmax(amp), amp.shape)
        i, j = min(max(i, 1), 7), min(max(j, 1), 7)
        step = steps[1] - steps[0]

        def vertex(lo, mid, hi):
            curvature = lo - 2 * mid + hi
            return 0.0 if curvature >= 0 else float(np.clip(0.5 * (lo - hi) / curvature, -1, 1))

        dj = vertex(amp[i, j - 1], amp[i, j], amp[i, j + 1])
        di = vertex(amp[i - 1, j], amp[i, j], amp[i + 1, j])
        k = np.array([kx[j] + dj * step * bins[0], ky[i] + di * step * bins[1]])
    return k


def _local_max(amplitude, kx, ky, target, radius) -> float:
    """Largest ``amplitude`` within ``radius`` (cycles/px) of frequency ``target``."""
    near = np.hypot(kx - target[0], ky - target[1]) <= radius
    return float(amplitude[near].max()) if near.any() else 0.0


def _rotate(v: np.ndarray, degrees: float) -> np.ndarray:
    t = np.deg2rad(degrees)
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]) @ v


def hexagonal_lattice(image: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Two first-order Bragg peaks of a hexagonal lattice image, refined to sub-pixel precision.

    Method: Hann-windowed FFT of the mean-subtracted image; the strongest amplitude among
    fringe periods from 3 px to (shorter side / 4) px is taken as a Bragg peak; if the image
    also has a clear peak (≥ 1/10 of it and ≥ 5 times the median amplitude at its radius) at
    half that frequency, or at 1/√3 of it turned by ±30°, that one is first order instead
    (so a strong {110} or {200} is not mistaken for {100}). The second peak is the
    strongest within ±20 % of the first's radius and ±20° of 60° counter-clockwise from it
    (in x-y), so scan distortion up to that much is tolerated. Both are then refined by zoomed DFTs with parabolic interpolation (about
    0.01 FFT bin). The two peaks are refined independently, so a sheared or strained lattice
    keeps its measured shape.

    Args:
        image: (rows, columns) image, any units; finite, at least 16 px on each side.

    Returns:
        (g1, g2): each (2,) float64 (kx, ky), cycles per pixel. g1 points into kx ≥ 0 (its
        angle lies in (−90°, 90°]), g2 is about +60° from g1. The real-space primitive
        vectors (px) are the columns of ``inv(stack([g1, g2]))``.

    Raises:
        ValueError: if ``image`` is not 2-D, is smaller than 16 px, is not finite, shows no
            clear Fourier peak (strongest < 8 × median amplitude), or no hexagonal pair.
    """
    arr = _image("image", image)
    rows, cols = arr.shape
    window = np.outer(np.hanning(rows), np.hanning(cols))
    work = (arr - arr.mean()) * window
    amplitude = np.abs(np.fft.fft2(work))
    ky, kx = np.meshgrid(np.fft.fftfreq(rows), np.fft.fftfreq(cols), indexing="ij")
    radius = np.hypot(kx, ky)
    band = (radius >= MIN_PERIODS / min(rows, cols)) & (radius <= 1.0 / MIN_PERIOD_PX)
    if not np.any(amplitude[band] > 0):
        raise ValueError("image shows no lattice fringes (its spectrum is flat); got a blank image")
    banded = np.where(band, amplitude, 0.0)
    first = np.unravel_index(np.argmax(banded), banded.shape)
    contrast = banded[first] / np.median(amplitude[band])
    if contrast < MIN_PEAK_CONTRAST:
        raise ValueError(
            f"image shows no lattice: its strongest Fourier peak is {contrast:.3g} times the "
            f"median amplitude, below the {MIN_PEAK_CONTRAST} a lattice gives (white noise ~4)"
        )
    g = np.array([kx[first], ky[first]])
    # a clear peak at a lower order of the hexagonal reciprocal lattice makes that the first
    # order: at least a tenth of the strongest and 5 times the median amplitude on its ring
    bin_radius = 1.5 / min(rows, cols)
    peak = banded[first]
    for _ in range(3):
        candidates = [g / 2, _rotate(g, 30) / np.sqrt(3), _rotate(g, -30) / np.sqrt(3)]
        lower = [(c, _local_max(banded, kx, ky, c, bin_radius)) for c in candidates]
        c, a = max(lower, key=lambda pair: pair[1])
        ring = band & (np.abs(radius - np.hypot(*c)) <= 0.1 * np.hypot(*c))
        floor = 5.0 * np.median(amplitude[ring]) if ring.any() else np.inf
        if a < max(0.1 * peak, floor):
            break
        near = (np.hypot(kx - c[0], ky - c[1]) <= bin_radius) & band
        idx = np.unravel_index(np.argmax(np.where(near, banded, 0.0)), banded.shape)
        g, peak = np.array([kx[idx], ky[idx]]), banded[idx]
    if g[0] < 0 or (g[0] == 0 and g[1] < 0):
        g = -g
    norm = np.hypot(*g)
    angle = np.arctan2(g[0] * ky - g[1] * kx, kx * g[0] + ky * g[1])  # from g, counter-clockwise
    ring = np.abs(radius - norm) < 0.2 * norm
    second = ring & (np.abs(angle - np.pi / 3) < np.deg2rad(20)) & band
    if not np.any(second) or banded[second].max() <= 0:
        raise ValueError(
            "image shows no second Bragg peak 60 degrees from the strongest one; it does not "
            f"look like a hexagonal lattice (strongest fringe period {1 / norm:.3g} px)"
        )
    idx = np.unravel_index(np.argmax(np.where(second, banded, 0.0)), banded.shape)
    g2 = np.array([kx[idx], ky[idx]])
    return _refine_peak(work, g), _refine_peak(work, g2)


def pixel_size_from_lattice(g1: ArrayLike, g2: ArrayLike, lattice_constant_A) -> float:
    """Pixel size, Å per pixel, from two first-order Bragg peaks of a hexagonal lattice.

    First-order {100} fringes of a hexagonal lattice of constant a are a·√3/2 apart, and the
    primitive cell covers √3a²/2. The pixel size is taken from the cell area,
    p = sqrt((√3/2)·a²·|det[g1; g2]|), which for an undistorted lattice equals (a·√3/2)·|g|
    and for a sheared or uniaxially strained one gives the geometric mean scale.

    Args:
        g1, g2: (2,) Bragg peak vectors (kx, ky), cycles per pixel, not collinear.
        lattice_constant_A: in-plane lattice constant a, Å (MoS2 3.16, WS2 3.15, MoSe2 3.29,
            WSe2 3.28).

    Returns:
        Pixel size, Å/px (float).
    """
    g1, g2 = np.asarray(g1, dtype=float), np.asarray(g2, dtype=float)
    for name, g in (("g1", g1), ("g2", g2)):
        if g.shape != (2,):
            raise ValueError(f"{name} must have shape (2,) (kx, ky) cycles/px; got shape {g.shape}")
        check_finite(name, g)
    check_positive("lattice_constant_A", lattice_constant_A, "Å")
    det = abs(g1[0] * g2[1] - g1[1] * g2[0])
    if det <= 1e-6 * np.hypot(*g1) * np.hypot(*g2):
        raise ValueError(f"g1 and g2 must not be collinear; got g1={g1}, g2={g2}")
    return float(np.sqrt(np.sqrt(3) / 2 * float(lattice_constant_A) ** 2 * det))


def scan_distortion(lattice_px: ArrayLike, pixel_size_A, lattice_constant_A) -> np.ndarray:
    """(2, 2) symmetric map D from ideal to recorded pixel offsets of a distorted scan.

    An anisotropic or sheared scan records the hexagonal lattice with primitive vectors
    L = [a1 a2] (columns, px) that differ from an ideal lattice of side a/p. D is the pure
    strain (no rotation) with L = D·R·L_ideal for some rotation R: D = (L G⁻¹ Lᵀ)^½, with G the
    ideal Gram matrix (a/p)²[[1, cos θ], [cos θ, 1]] at the measured angle's nearer of
    θ = 60° or 120°. D is the identity for an undistorted image; pass it to
    :func:`extract_patches` to cut undistorted patches.

    Args:
        lattice_px: (2, 2) primitive vectors as columns, px (``MX2Sites.lattice_px``).
        pixel_size_A: pixel size, Å/px (``MX2Sites.pixel_size_A``).
        lattice_constant_A: lattice constant a, Å.
    """
    lattice = np.asarray(lattice_px, dtype=float)
    if lattice.shape != (2, 2):
        raise ValueError(f"lattice_px must have shape (2, 2); got shape {lattice.shape}")
    check_finite("lattice_px", lattice)
    check_positive("pixel_size_A", pixel_size_A, "Å/px")
    check_positive("lattice_constant_A", lattice_constant_A, "Å")
    a1, a2 = lattice.T
    cos = float(a1 @ a2 / (np.hypot(*a1) * np.hypot(*a2)))
    ideal_cos = 0.5 if cos > 0 else -0.5
    side = float(lattice_constant_A) / float(pixel_size_A)
    gram = side**2 * np.array([[1.0, ideal_cos], [ideal_cos, 1.0]])
    metric = lattice @ np.linalg.inv(gram) @ lattice.T
    values, vectors = np.linalg.eigh(0.5 * (metric + metric.T))
    return (vectors * np.sqrt(np.maximum(values, 0.0))) @ vectors.T


# --------------------------------------------------------------------------- peaks


def find_peaks(
    image: ArrayLike, min_distance_px, threshold=0.0, smoothing_px=0.0
) -> np.ndarray:
    """Local intensity maxima of an image, refined to sub-pixel precision.

    A pixel is a peak when it is the largest within ``min_distance_px`` of itself and above
    ``min + threshold·(max − min)`` of the (smoothed) image; of peaks closer than
    ``min_distance_px`` only the brightest is kept. Peaks on the outermost pixel row or column
    are dropped (they cannot be refined). Positions are refined by a parabola through each
    peak and its two neighbours along x and along y (offsets clipped to ±0.5 px).

    Args:
        image: (rows, columns) image, any units; finite, at least 16 px on each side.
        min_distance_px: smallest distance between two peaks, px (> 0).
        threshold: relative height in [0, 1] of the image's range below which maxima are
            ignored.
        smoothing_px: standard deviation of a Gaussian applied first, px (≥ 0; 0 = none).

    Returns:
        (n, 2) float64 peak positions (x, y) = (column, row), px, brightest first.
    """
    arr = _image("image", image)
    check_positive("min_distance_px", min_distance_px, "px")
    check_in_range("threshold", threshold, 0.0, 1.0)
    check_nonnegative("smoothing_px", smoothing_px, "px")
    if smoothing_px > 0:
        arr = ndimage.gaussian_filter(arr, float(smoothing_px), mode="nearest")
    r = max(int(np.floor(min_distance_px)), 1)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    footprint = xx**2 + yy**2 <= float(min_distance_px) ** 2
    local = ndimage.maximum_filter(arr, footprint=footprint, mode="nearest")
    lo, hi = arr.min(), arr.max()
    is_peak = (arr == local) & (arr > lo + float(threshold) * (hi - lo)) & (hi > lo)
    is_peak[[0, -1], :] = False
    is_peak[:, [0, -1]] = False
    rows, cols = np.nonzero(is_peak)
    heights = arr[rows, cols]
    order = np.argsort(-heights, kind="stable")
    rows, cols = rows[order], cols[order]
    # non-maximum suppression of plateaus and ties, brightest first
    keep = np.ones(rows.size, dtype=bool)
    if rows.size > 1:
        tree = cKDTree(np.stack([cols, rows], axis=1))
        for i in range(rows.size):
            if keep[i]:
                for j in tree.query_ball_point((cols[i], rows[i]), float(min_distance_px) - 1e-9):
                    if j > i:
                        keep[j] = False
    rows, cols = rows[keep], cols[keep]

    def vertex(lo_, mid, hi_):
        curvature = lo_ - 2 * mid + hi_
        with np.errstate(divide="ignore", invalid="ignore"):
            offset = np.where(curvature < 0, 0.5 * (lo_ - hi_) / curvature, 0.0)
        return np.clip(offset, -0.5, 0.5)

    dx = vertex(arr[rows, cols - 1], arr[rows, cols], arr[rows, cols + 1])
    dy = vertex(arr[rows - 1, cols], arr[rows, cols], arr[rows + 1, cols])
    return np.stack([cols + dx, rows + dy], axis=1).astype(float).reshape(-1, 2)


# --------------------------------------------------------------------------- sites


class MX2Sites(NamedTuple):
    """Atomic columns found in an MX2 image.

    Attributes:
        positions_px: (n, 2) float64 site positions (x, y) = (column, row), px; metal sites
            first, then chalcogen columns, each sorted by y then x.
        sublattice: (n,) int, 0 metal, 1 chalcogen column (X2 pair in projection).
        pixel_size_A: pixel size measured from the lattice, Å/px (from the cell area, see
            :func:`pixel_size_from_lattice`).
        residual_px: RMS distance of the intensity maxima used in the fit from the
            fitted displacement field, px (a measure of local distortion and noise).
        lattice_px: (2, 2) primitive vectors a1, a2 (columns) of the image-average lattice,
            px. Their lengths differ from ``lattice_constant_A / pixel_size_A``, and their
            angle from 120°, where the scan is anisotropic or sheared (common: slow-scan drift).
    """

    positions_px: np.ndarray
    sublattice: np.ndarray
    pixel_size_A: float
    residual_px: float
    lattice_px: np.ndarray


def _basis(t: np.ndarray, degree: int) -> np.ndarray:
    """(n, m) monomials t1^i t2^j, i + j ≤ degree, of (n, 2) normalised lattice coordinates."""
    return np.stack(
        [t[:, 0] ** i * t[:, 1] ** (d - i) for d in range(degree + 1) for i in range(d + 1)],
        axis=1,
    )


def _bilinear(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    return ndimage.map_coordinates(image, [xy[:, 1], xy[:, 0]], order=1, mode="nearest")


def find_mx2_sites(
    image: ArrayLike,
    lattice_constant_A=3.16,
    border_px=None,
    *,
    brighter: str = "metal",
    degree: int = 2,
) -> MX2Sites:
    """Every metal site and chalcogen column of a 2H MX2 monolayer in a HAADF image.

    Method:

    1. Lattice: :func:`hexagonal_lattice` gives the first-order Bragg peaks, hence the primitive
       vectors and, with ``lattice_constant_A``, the pixel size.
    2. Sublattices: the image, folded into one primitive cell with the measured lattice and
       smoothed, has its maximum on a honeycomb site; of the three high-symmetry positions
       (that site and the points 1/3, 2/3 of the cell away), averaged over the image, the
       brightest is the ``brighter`` sublattice, the next the other one, and the third the
       hollow.
    3. Distortion: intensity maxima (:func:`find_peaks` on the image smoothed by 0.12 of the
       metal–chalcogen distance) within 0.35 (then 0.25) of that distance of each predicted
       site of the brighter sublattice are matched to it, and a polynomial map of degree
       ``degree`` from lattice coordinates to pixels is fitted to them by least squares,
       rejecting outliers (> 3 robust standard deviations). Missing or displaced maxima
       (vacancies, dark dopants) are outliers or absent and do not move the fit.
    4. Sites: both sublattices are predicted from the map (the brighter at integer lattice
       coordinates, the other at its fractional offset) and kept where they lie at least
       ``border_px`` inside the image. No site needs a maximum of its own.

    Which sublattice is brighter: for Z^1.7 cross-sections the metal column is brighter in
    MoS2 (42^1.7 : 2·16^1.7 ≈ 2.6), WS2 and WSe2, but in MoSe2 the Se2 column is (2·34^1.7 :
    42^1.7 ≈ 1.4), so pass ``brighter="chalcogen"`` for MoSe2.

    Limits: one grain with one orientation across the image (grain boundaries, rotated
    flakes, holes and amorphous patches still get predicted sites); distortion smooth on the
    scale of the image (line jitter and sudden scan shifts are not followed, and show in
    ``residual_px``); at least 4 fringe periods across the image and ≥ 3 px per fringe; a
    wrong ``brighter`` swaps the two sublattices.

    Args:
        image: (rows, columns) HAADF image, any units (brighter = more scattering); finite,
            at least 16 px on each side.
        lattice_constant_A: in-plane lattice constant a, Å (> 0); MoS2 3.16, WS2 3.15, MoSe2
            3.29, WSe2 3.28.
        border_px: sites closer than this to the image edge (px, ≥ 0) are dropped; default
            one lattice constant in pixels.
        brighter: "metal" or "chalcogen", the sublattice brighter on average.
        degree: degree of the polynomial displacement field (0 to 4; 1 = affine).

    Returns:
        :class:`MX2Sites`.

    Raises:
        ValueError: for a bad argument, or an image with too few maxima to fit.
    """
    arr = _image("image", image)
    check_positive("lattice_constant_A", lattice_constant_A, "Å")
    if border_px is not None:
        check_nonnegative("border_px", border_px, "px")
    if brighter not in ("metal", "chalcogen"):
        raise ValueError(f"brighter must be 'metal' or 'chalcogen'; got {brighter!r}")
    integer = isinstance(degree, (int, np.integer)) and not isinstance(degree, bool)
    if not integer or not 0 <= degree <= 4:
        raise ValueError(f"degree must be an integer in [0, 4]; got {degree!r}")
    rows, cols = arr.shape
    g1, g2 = hexagonal_lattice(arr)
    pixel_A = pixel_size_from_lattice(g1, g2, lattice_constant_A)
    a_px = float(lattice_constant_A) / pixel_A
    bond_px = a_px / np.sqrt(3)  # projected metal–chalcogen distance, px
    border = a_px if border_px is None else float(border_px)
    recip = np.stack([g1, g2])  # fractional coordinates u = recip @ (x, y)
    direct = np.linalg.inv(recip)  # columns: primitive vectors, px

    smooth = ndimage.gaussian_filter(arr, max(0.12 * bond_px, 0.5), mode="nearest")
    yy, xx = np.indices(arr.shape)
    frac = np.stack([xx.ravel(), yy.ravel()], axis=1) @ recip.T  # (pixels, 2)

    # 2. the three high-symmetry positions (fractional), ranked by mean brightness
    bins = 24
    cell = np.floor(np.mod(frac, 1.0) * bins).astype(int) % bins
    total = np.zeros((bins, bins))
    count = np.zeros((bins, bins))
    np.add.at(total, (cell[:, 0], cell[:, 1]), smooth.ravel())
    np.add.at(count, (cell[:, 0], cell[:, 1]), 1)
    motif = ndimage.uniform_filter(total / np.maximum(count, 1), 3, mode="wrap")
    top = np.array(np.unravel_index(np.argmax(motif), motif.shape))
    origin = (top + 0.5) / bins
    shifts = [np.zeros(2), np.array([1, 2]) / 3, np.array([2, 1]) / 3]
    n_lo = np.floor(frac.min(axis=0)).astype(int) - 2
    n_hi = np.ceil(frac.max(axis=0)).astype(int) + 2
    n1, n2 = np.meshgrid(np.arange(n_lo[0], n_hi[0] + 1), np.arange(n_lo[1], n_hi[1] + 1))
    lattice_n = np.stack([n1.ravel(), n2.ravel()], axis=1).astype(float)

    def inside(xy, margin):
        return (
            (xy[:, 0] >= margin) & (xy[:, 0] <= cols - 1 - margin)
            & (xy[:, 1] >= margin) & (xy[:, 1] <= rows - 1 - margin)
        )

    def affine(u):
        return (u + origin) @ direct.T

    def brightness(shift):
        xy = affine(lattice_n + shift)
        xy = xy[inside(xy, 0)]
        return _bilinear(smooth, xy).mean() if len(xy) else -np.inf

    order = np.argsort([-brightness(shift) for shift in shifts])
    other_offset = np.mod(shifts[order[1]] - shifts[order[0]], 1.0)
    origin = origin + shifts[order[0]]  # brighter sites at integer fractional coordinates

    # 3. polynomial displacement field fitted to the maxima of the brighter sublattice
    peaks = find_peaks(smooth, 0.5 * bond_px)
    if len(peaks) < 3:
        raise ValueError(f"image has only {len(peaks)} intensity maxima; too few to fit a lattice")
    tree = cKDTree(peaks)
    centre = lattice_n.mean(axis=0)
    scale = max(np.abs(lattice_n - centre).max(), 1.0)
    mapping = affine
    residual = float("nan")
    for radius in (0.35, 0.25):
        predicted = mapping(lattice_n)
        candidates = inside(predicted, -0.5 * bond_px)
        dist, which = tree.query(predicted[candidates], distance_upper_bound=radius * bond_px)
        hit = np.isfinite(dist)
        u = lattice_n[candidates][hit]
        xy = peaks[which[hit]]
        deg = degree
        while deg > 0 and len(u) < 3 * (deg + 1) * (deg + 2) // 2:
            deg -= 1  # too few maxima for this degree
        if len(u) < 3:
            raise ValueError(
                f"image has only {len(u)} intensity maxima near predicted {brighter} sites; too "
                "few to fit the lattice (is lattice_constant_A right and the image an MX2 "
                "lattice?)"
            )
        design = _basis((u - centre) / scale, deg)
        base = affine(u)  # the polynomial fits what the global lattice leaves
        use = np.ones(len(u), dtype=bool)
        for _ in range(3):
            coef, *_unused = np.linalg.lstsq(design[use], (xy - base)[use], rcond=None)
            err = np.hypot(*(design @ coef + base - xy).T)
            sigma = 1.4826 * np.median(err[use]) + 1e-3
            new_use = err <= max(3.0 * sigma, 0.05 * bond_px)
            if new_use.sum() < design.shape[1] or np.array_equal(new_use, use):
                break
            use = new_use
        residual = float(np.sqrt(np.mean(err[use] ** 2)))

        def mapping(q, coef=coef, deg=deg):
            return affine(q) + _basis((q - centre) / scale, deg) @ coef

    # 4. all sites inside the border
    bright = mapping(lattice_n)
    other = mapping(lattice_n + other_offset)
    metal, chalcogen = (bright, other) if brighter == "metal" else (other, bright)
    metal = metal[inside(metal, border)]
    chalcogen = chalcogen[inside(chalcogen, border)]

    def raster(xy):
        return xy[np.lexsort((xy[:, 0], np.round(xy[:, 1], 6)))]

    positions = np.concatenate([raster(metal), raster(chalcogen)]).reshape(-1, 2)
    sublattice = np.concatenate(
        [np.full(len(metal), METAL, int), np.full(len(chalcogen), CHALCOGEN, int)]
    )
    return MX2Sites(positions, sublattice, pixel_A, residual, direct)


# --------------------------------------------------------------------------- patches


def extract_patches(
    image: Float[ArrayLike, "rows cols"],
    centres_px: Float[ArrayLike, "n 2"],
    pixel_size_A,
    size_px: int,
    sampling_A,
    mode: str = "nearest",
    distortion: ArrayLike | None = None,
) -> Float[Array, "n size size"]:
    """Square patches of an image around given centres, resampled on a grid in Å.

    Each patch is ``size_px`` × ``size_px`` points spaced ``sampling_A`` apart, centred on its
    centre: point [i, j] lies at (x, y) = centre + ((j, i) − (size_px − 1)/2)·sampling_A /
    pixel_size_A px, so an odd size puts the centre on the middle point. Values come from
    bilinear interpolation (``jax.scipy.ndimage.map_coordinates``, order 1). Points outside
    the image take the value of ``mode`` ("nearest": the nearest edge pixel; "constant":
    0; also "wrap", "mirror", "reflect").

    Runs under ``jit`` and ``vmap`` (``size_px`` and ``mode`` static); concrete arguments are
    validated first.

    Args:
        image: (rows, columns) image, any units.
        centres_px: (n, 2) patch centres (x, y) = (column, row), px; finite.
        pixel_size_A: pixel size of ``image``, Å/px (> 0).
        size_px: points per patch side (int ≥ 3; odd or even).
        sampling_A: distance between patch points, Å (> 0).
        mode: how points outside the image are filled (static).
        distortion: (2, 2) map D of pixel offsets (:func:`scan_distortion`): point offsets
            (in px at ``pixel_size_A``) are multiplied by D before sampling, which undoes a
            sheared or anisotropic scan; default the identity.

    Returns:
        (n, size_px, size_px) patches in the image's float dtype, [n, row, column].
    """
    if isinstance(size_px, bool) or not isinstance(size_px, (int, np.integer)) or size_px < 3:
        raise ValueError(f"size_px must be an integer >= 3; got {size_px!r}")
    if mode not in ("nearest", "constant", "wrap", "mirror", "reflect"):
        raise ValueError(
            "mode must be one of 'nearest', 'constant', 'wrap', 'mirror', 'reflect'; "
            f"got {mode!r}"
        )
    if jnp.ndim(image) != 2:
        raise ValueError(f"image must be a 2-D array (rows, columns); got shape {jnp.shape(image)}")
    if jnp.ndim(centres_px) != 2 or jnp.shape(centres_px)[-1] != 2:
        raise ValueError(
            f"centres_px must have shape (n, 2) (x, y) px; got shape {jnp.shape(centres_px)}"
        )
    check_finite("image", image)
    check_finite("centres_px", centres_px)
    check_positive("pixel_size_A", pixel_size_A, "Å/px")
    check_positive("sampling_A", sampling_A, "Å")
    if distortion is None:
        distortion = np.eye(2)
    if jnp.shape(distortion) != (2, 2):
        raise ValueError(f"distortion must have shape (2, 2); got shape {jnp.shape(distortion)}")
    check_finite("distortion", distortion)
    return _extract_patches(image, centres_px, pixel_size_A, sampling_A, distortion,
                            int(size_px), mode)  # fmt: skip


@functools.partial(jax.jit, static_argnums=(5, 6))
def _extract_patches(image, centres_px, pixel_size_A, sampling_A, distortion, size_px, mode):
    image = jnp.asarray(image)
    dtype = jnp.result_type(image.dtype, float)
    image = image.astype(dtype)
    centres = jnp.asarray(centres_px, dtype)
    step = jnp.asarray(sampling_A, dtype) / jnp.asarray(pixel_size_A, dtype)
    offsets = (jnp.arange(size_px, dtype=dtype) - (size_px - 1) / 2) * step
    grid = jnp.stack(jnp.meshgrid(offsets, offsets, indexing="xy"), -1)  # [i, j] = (x_j, y_i)
    grid = grid @ jnp.asarray(distortion, dtype).T

    def one(centre):
        rows = centre[1] + grid[..., 1]
        cols = centre[0] + grid[..., 0]
        return jax.scipy.ndimage.map_coordinates(image, [rows, cols], order=1, mode=mode)

    return jax.vmap(one)(centres)
