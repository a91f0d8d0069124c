"""Atomic-site finding in MX2 HAADF images and patch extraction.

Simulated images come from stemjax's own incoherent HAADF model with a known rotation and
pixel size; the real images are SciLink's 60 kV HAADF images of (V-doped) MoS2.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree

from stemjax.perception.sites import (
    extract_patches,
    find_mx2_sites,
    find_peaks,
    hexagonal_lattice,
    pixel_size_from_lattice,
)
from stemjax.physics import (
    Acquisition,
    IncoherentImaging,
    Probe,
    ScanGrid,
    acquire,
    mx2_monolayer,
    rotated,
)

ROOT = Path(__file__).resolve().parents[2]
MOS2 = ROOT.parent / "shared" / "data" / "mos2_haadf"
REAL = ["MoS2_stem", "MoS2_stem_Exp-000-2", "MoS2_stem_Exp-001-5", "MoS2_stem_Exp-002-5"]
LATTICE_A = {"MoS2": 3.16, "WS2": 3.153, "MoSe2": 3.288, "WSe2": 3.282}
PIXEL_A = 0.2137  # Å/px of the simulations
ANGLE_DEG = 17.0  # in-plane rotation of the simulated specimens


def simulate(material="MoS2", pixels=160, seed=0, **defects):
    """A 60 keV HAADF image (30 pA, 4 µs, Poisson noise) of a rotated MX2 monolayer.

    Returns the image and the true sites in pixels: metal (m, 2), chalcogen columns (c, 2),
    dopant metal sites and chalcogen columns with both atoms missing.
    """
    key_specimen, key_image = jax.random.split(jax.random.key(seed))
    specimen = rotated(mx2_monolayer(key_specimen, material, (22, 13), **defects), ANGLE_DEG)
    # image the middle of the cell, where no site has been wrapped across the cell edge
    centre = np.asarray(specimen.cell[:2]) / 2
    assert np.hypot(pixels, pixels) * PIXEL_A / 2 + 5 < min(centre)
    origin = centre - PIXEL_A * (pixels - 1) / 2
    grid = ScanGrid((pixels, pixels), PIXEL_A, origin=tuple(origin))
    model = IncoherentImaging(Probe(60.0, 30.0), exponent=1.7)
    image = np.asarray(acquire(key_image, model, specimen, grid, Acquisition(30.0, 4.0)).image)

    xy = (np.asarray(specimen.positions[:, :2]) - origin) / PIXEL_A
    z = np.asarray(specimen.atomic_numbers)
    occupied = np.asarray(specimen.occupancies)
    metal = z != {"MoS2": 16, "WS2": 16, "MoSe2": 34, "WSe2": 34}[material]
    dopant = metal & (np.asarray(specimen.atom_types) == 2)
    columns, index = np.unique(np.round(xy[~metal], 3), axis=0, return_inverse=True)
    atoms = np.bincount(index.ravel(), weights=occupied[~metal], minlength=len(columns))
    return image, {
        "metal": xy[metal],
        "chalcogen": columns,
        "dopant": xy[dopant],
        "empty": columns[atoms == 0],
    }


@pytest.fixture(scope="module")
def defective_mos2():
    image, truth = simulate(
        "MoS2", dopant="V", dopant_fraction=0.06, single_vacancy_fraction=0.06,
        double_vacancy_fraction=0.06,
    )
    return image, truth, find_mx2_sites(image, LATTICE_A["MoS2"], border_px=8)


def inside(xy, shape, border):
    return np.all((xy >= border) & (xy <= np.array(shape[::-1]) - 1 - border), axis=1)


# ------------------------------------------------------------------ lattice and pixel size


def hexagonal_cosines(g1, shape=(96, 128)):
    """Sum of three cosines with first-order peaks g1 and g1 turned by ±60°."""
    rows, cols = np.indices(shape)
    turn = np.deg2rad(60)
    g2 = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]]) @ g1
    return sum(np.cos(2 * np.pi * (g[0] * cols + g[1] * rows) + 0.3) for g in (g1, g2, g2 - g1))


def test_hexagonal_lattice_recovers_off_grid_bragg_peaks():
    g1 = 0.083 * np.array([np.cos(0.31), np.sin(0.31)])  # 12.05 px fringes, not on an FFT bin
    found1, found2 = hexagonal_lattice(hexagonal_cosines(g1))
    turn = np.deg2rad(60)
    g2 = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]]) @ g1
    # either (g1, g2) or a symmetry-equivalent pair of the six first-order peaks
    six = [r * g for g in (g1, g2, g2 - g1) for r in (1, -1)]
    for found in (found1, found2):
        assert min(np.hypot(*(found - g)) for g in six) < 2e-3 * np.hypot(*g1)
    assert found1[0] >= 0
    cross = found1[0] * found2[1] - found1[1] * found2[0]
    assert np.degrees(np.arcsin(cross / np.hypot(*found1) / np.hypot(*found2))) == pytest.approx(
        60, abs=0.5
    )


@pytest.mark.parametrize("order", ["110", "200"])
def test_hexagonal_lattice_finds_first_order_under_a_stronger_higher_order(order):
    g = 0.07 * np.array([np.cos(0.2), np.sin(0.2)])
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    higher = np.sqrt(3) * np.array([[c, -s], [s, c]]) @ g if order == "110" else 2 * g
    image = 0.2 * hexagonal_cosines(g, (128, 128)) + hexagonal_cosines(higher, (128, 128))
    image += 0.5 * np.random.default_rng(0).normal(size=image.shape)
    for found in hexagonal_lattice(image):
        assert np.hypot(*found) == pytest.approx(0.07, rel=0.01)


def test_pixel_size_from_lattice_closed_form():
    a = 3.16
    fringe_px = 13.7  # px between {100} fringes
    pixel = a * np.sqrt(3) / 2 / fringe_px
    g1 = np.array([1.0, 0.0]) / fringe_px
    g2 = np.array([np.cos(np.pi / 3), np.sin(np.pi / 3)]) / fringe_px
    assert pixel_size_from_lattice(g1, g2, a) == pytest.approx(pixel, rel=1e-12)
    with pytest.raises(ValueError, match="collinear"):
        pixel_size_from_lattice(g1, 2 * g1, a)
    with pytest.raises(ValueError, match="lattice_constant_A"):
        pixel_size_from_lattice(g1, g2, -1.0)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((4, 32, 32)), "2-D"),
        (np.zeros((8, 64)), "at least 16"),
        (np.where(np.eye(32) > 0, np.nan, 1.0), "finite"),
        (np.ones((32, 32)), "no lattice fringes"),
        (np.random.default_rng(0).normal(size=(128, 128)), "no lattice"),
    ],
)
def test_hexagonal_lattice_rejects_bad_images(bad, match):
    with pytest.raises(ValueError, match=rf"image.*{match}|{match}.*image"):
        hexagonal_lattice(bad)


# ------------------------------------------------------------------ sites in simulated images


def test_pixel_size_measured_within_one_percent(defective_mos2):
    _, _, sites = defective_mos2
    assert sites.pixel_size_A == pytest.approx(PIXEL_A, rel=0.01)


def test_every_site_found_is_a_true_site_of_its_sublattice(defective_mos2):
    image, truth, sites = defective_mos2
    for label, name in ((0, "metal"), (1, "chalcogen")):
        found = sites.positions_px[sites.sublattice == label]
        distance, _ = cKDTree(truth[name]).query(found)
        assert len(found) > 50
        assert distance.max() * PIXEL_A < 0.3  # Å


def test_all_true_sites_inside_the_border_are_found_with_defects(defective_mos2):
    image, truth, sites = defective_mos2
    margin = 8 + 0.3 / PIXEL_A  # a true site this far in must have been found
    for name, label in (("metal", 0), ("chalcogen", 1), ("dopant", 0), ("empty", 1)):
        true = truth[name][inside(truth[name], image.shape, margin)]
        assert len(true) >= (1 if name in ("dopant", "empty") else 50), name
        found = sites.positions_px[sites.sublattice == label]
        distance, _ = cKDTree(found).query(true)
        assert distance.max() * PIXEL_A < 0.3, name
    # and nothing outside the border
    assert inside(sites.positions_px, image.shape, 8).all()


def test_displacement_field_follows_a_smooth_distortion(defective_mos2):
    image, truth, _ = defective_mos2
    half = (image.shape[0] - 1) / 2

    def shift(x, y):  # px; a quadratic field, 2.5 px at the corners
        u, v = (x - half) / half, (y - half) / half
        return np.stack([1.5 * u * v + 1.0 * v**2, 1.2 * u**2 - 0.8 * u * v], axis=-1)

    rows, cols = np.indices(image.shape).astype(float)
    d = shift(cols, rows)
    # the warped image at p shows the specimen at p + shift(p)
    warped = ndimage.map_coordinates(image, [rows + d[..., 1], cols + d[..., 0]], order=3)

    def moved(xy):  # solve p + shift(p) = xy by fixed-point iteration
        p = xy.copy()
        for _ in range(50):
            p = xy - shift(p[:, 0], p[:, 1])
        return p

    worst = {}
    for degree in (1, 2):
        sites = find_mx2_sites(warped, LATTICE_A["MoS2"], border_px=8, degree=degree)
        distance = [
            cKDTree(moved(truth[name])).query(sites.positions_px[sites.sublattice == label])[0]
            for label, name in ((0, "metal"), (1, "chalcogen"))
        ]
        worst[degree] = max(d.max() for d in distance) * PIXEL_A
    assert worst[2] < 0.1 < worst[1]  # Å: the affine lattice alone is off by > 0.1 Å


@pytest.mark.parametrize("material", ["WS2", "MoSe2", "WSe2"])
def test_other_materials_get_lattice_and_sublattices_right(material):
    image, truth = simulate(material, seed=1)  # same shapes as the fixture: compiled once
    # Z^1.7: Se2 columns outshine Mo (2·34^1.7 > 42^1.7); W outshines S2 and Se2
    brighter = "chalcogen" if material == "MoSe2" else "metal"
    sites = find_mx2_sites(image, LATTICE_A[material], brighter=brighter)
    assert sites.pixel_size_A == pytest.approx(PIXEL_A, rel=0.01)
    for label, name in ((0, "metal"), (1, "chalcogen")):
        distance, _ = cKDTree(truth[name]).query(sites.positions_px[sites.sublattice == label])
        assert distance.max() * PIXEL_A < 0.3


def test_find_mx2_sites_rejects_bad_arguments(defective_mos2):
    image = defective_mos2[0]
    with pytest.raises(ValueError, match="lattice_constant_A"):
        find_mx2_sites(image, lattice_constant_A=0.0)
    with pytest.raises(ValueError, match="border_px"):
        find_mx2_sites(image, border_px=-1)
    with pytest.raises(ValueError, match="brighter"):
        find_mx2_sites(image, brighter="S")
    with pytest.raises(ValueError, match="degree"):
        find_mx2_sites(image, degree=7)
    with pytest.raises(ValueError, match="image"):
        find_mx2_sites(image[None])


# ------------------------------------------------------------------ peaks


def blobs(centres, heights, shape=(64, 80), sigma=2.0):
    rows, cols = np.indices(shape)
    return sum(
        h * np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * sigma**2))
        for (x, y), h in zip(centres, heights)
    )


def test_find_peaks_subpixel_min_distance_and_threshold():
    centres = np.array([[20.3, 15.7], [50.6, 40.2], [60.45, 12.1], [30.0, 45.0], [33.0, 45.0]])
    heights = [1.0, 0.9, 0.8, 0.7, 0.05]  # the last is close to the fourth and faint
    image = blobs(centres, heights)
    peaks = find_peaks(image, min_distance_px=5.0, threshold=0.1)
    assert peaks.shape == (4, 2)
    np.testing.assert_allclose(peaks, centres[:4], atol=0.1)  # brightest first
    assert len(find_peaks(image, 5.0, threshold=0.75)) == 3
    assert len(find_peaks(image, 35.0)) == 2  # the two brightest are 39 px apart
    with pytest.raises(ValueError, match="threshold"):
        find_peaks(image, 5.0, threshold=1.5)
    with pytest.raises(ValueError, match="min_distance_px"):
        find_peaks(image, 0.0)


# ------------------------------------------------------------------ patches


@pytest.mark.parametrize("sampling_A", [0.2, 0.3, 0.05])
def test_patch_centre_is_the_blob_maximum(sampling_A):
    centre = np.array([[37.37, 21.81]])  # px
    image = jnp.asarray(blobs(centre, [1.0], sigma=3.0), jnp.float32)
    patch = extract_patches(image, centre, pixel_size_A=0.2, size_px=21, sampling_A=sampling_A)
    assert patch.shape == (1, 21, 21) and patch.dtype == jnp.float32
    patch = np.asarray(patch[0], float)
    if sampling_A >= 0.2:  # points at least a pixel apart: the centre point is the largest
        assert np.unravel_index(np.argmax(patch), patch.shape) == (10, 10)
    # bilinear interpolation peaks on pixels, so finer than a pixel only the centroid is centred
    rows, cols = np.indices(patch.shape)
    weight = patch - patch.min()
    centroid = np.array([(weight * cols).sum(), (weight * rows).sum()]) / weight.sum()
    np.testing.assert_allclose(centroid, [10, 10], atol=0.1 * 0.2 / sampling_A)


def test_patch_at_pixel_sampling_is_a_crop_and_even_sizes_centre_between_pixels():
    image = jnp.asarray(np.random.default_rng(0).random((40, 50)), jnp.float32)
    patch = extract_patches(image, jnp.array([[20.0, 12.0]]), 0.25, 5, 0.25)[0]
    np.testing.assert_allclose(patch, image[10:15, 18:23], rtol=1e-6)
    even = extract_patches(image, jnp.array([[20.5, 12.5]]), 0.25, 4, 0.25)[0]
    np.testing.assert_allclose(even, image[11:15, 19:23], rtol=1e-6)


def test_extract_patches_jit_equals_eager_and_vmaps(dtype):
    rng = np.random.default_rng(1)
    image = jnp.asarray(rng.random((48, 48)), dtype)
    centres = jnp.asarray(rng.uniform(5, 43, (7, 2)), dtype)
    eager = extract_patches(image, centres, 0.18, 9, 0.11)
    assert eager.shape == (7, 9, 9) and eager.dtype == dtype
    patches = jax.jit(lambda im, c, p, s: extract_patches(im, c, p, 9, s))
    jitted = patches(image, centres, 0.18, 0.11)
    np.testing.assert_allclose(jitted, eager, rtol=1e-6, atol=1e-7)
    stack = jnp.stack([image] * 2)
    stacked = jax.vmap(lambda im: extract_patches(im, centres, 0.18, 9, 0.11))(stack)
    np.testing.assert_allclose(stacked[1], eager, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"sampling_A": 0.0}, "sampling_A"),
        ({"pixel_size_A": -0.2}, "pixel_size_A"),
        ({"size_px": 2}, "size_px"),
        ({"size_px": 5.0}, "size_px"),
        ({"centres_px": np.array([[1.0, np.nan]])}, "centres_px"),
        ({"centres_px": np.array([1.0, 2.0])}, "centres_px"),
        ({"image": np.zeros((2, 8, 8))}, "image"),
    ],
)
def test_extract_patches_rejects_bad_arguments(kwargs, name):
    args = {
        "image": np.zeros((16, 16)), "centres_px": np.array([[8.0, 8.0]]), "pixel_size_A": 0.2,
        "size_px": 5, "sampling_A": 0.1,
    } | kwargs
    with pytest.raises(ValueError, match=name):
        extract_patches(**args)


# ------------------------------------------------------------------ real images


@pytest.fixture(scope="module")
def real_sites():
    if not MOS2.is_dir():
        pytest.skip("shared/data/mos2_haadf is not beside the checkout")
    out = {}
    for name in REAL:
        image = np.load(MOS2 / f"{name}.npy", allow_pickle=False)
        out[name] = image, find_mx2_sites(image, LATTICE_A["MoS2"])
    return out


def test_real_pixel_size_matches_the_field_of_view(real_sites):
    # SciLink's metadata: 9 nm across 512 px (the JSON of MoS2_stem says 8 nm)
    assert 0.016 < real_sites["MoS2_stem_Exp-000-2"][1].pixel_size_A / 10 < 0.019  # nm/px


@pytest.mark.parametrize("name", REAL)
def test_real_site_count_and_contrast(real_sites, name):
    image, sites = real_sites[name]
    a = LATTICE_A["MoS2"]
    border = a / sites.pixel_size_A  # the default border, px
    # two columns (M and X2) per primitive cell of area √3a²/2; sites lie in a square of side
    # (512 − 1 − 2·border) px, give or take half a site spacing at each edge
    side_A = (image.shape[0] - 1 - 2 * border) * sites.pixel_size_A
    expected = 2 * side_A**2 / (np.sqrt(3) / 2 * a**2)
    assert len(sites.positions_px) == pytest.approx(expected, rel=0.05)
    assert 0.8 < np.mean(sites.sublattice == 0) / np.mean(sites.sublattice == 1) < 1.25
    rows, cols = sites.positions_px[:, 1], sites.positions_px[:, 0]
    value = image[np.round(rows).astype(int), np.round(cols).astype(int)]
    assert value[sites.sublattice == 0].mean() > 1.1 * value[sites.sublattice == 1].mean()


def test_scan_distortion_recovers_a_known_strain():
    from stemjax.perception import scan_distortion

    a_A, pixel_A = 3.16, 0.2
    side = a_A / pixel_A
    ideal = side * np.array([[1.0, -0.5], [0.0, np.sqrt(3) / 2]])  # columns a1, a2 at 120°
    turn = np.array([[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]])
    np.testing.assert_allclose(scan_distortion(turn @ ideal, pixel_A, a_A), np.eye(2), atol=1e-12)
    strain = np.array([[1.08, 0.03], [0.03, 0.95]])
    np.testing.assert_allclose(scan_distortion(strain @ turn @ ideal, pixel_A, a_A), strain,
                               atol=1e-12)  # fmt: skip
    # the 60° choice of primitive vectors gives the same map
    sixty = np.column_stack([ideal[:, 0], ideal[:, 0] + ideal[:, 1]])
    np.testing.assert_allclose(scan_distortion(strain @ sixty, pixel_A, a_A), strain, atol=1e-12)
    with pytest.raises(ValueError, match="lattice_px must have shape"):
        scan_distortion(np.eye(3), pixel_A, a_A)


def test_extract_patches_undoes_a_distortion():
    from stemjax.perception import extract_patches

    strain = np.array([[1.1, 0.05], [0.05, 0.9]])
    rows, cols = np.mgrid[0:64, 0:64].astype(float)
    centre = np.array([31.3, 30.7])
    # a blob elongated by the strain: exp(−|S⁻¹(r − c)|² / 2σ²)
    d = np.linalg.solve(strain, np.stack([cols - centre[0], rows - centre[1]]).reshape(2, -1))
    image = np.exp(-np.sum(d**2, 0) / (2 * 3.0**2)).reshape(64, 64)
    patch = np.asarray(extract_patches(image, centre[None], 1.0, 15, 1.0, distortion=strain))[0]
    # undistorted, the blob is round: equal second moments along x and y, no cross term
    yy, xx = np.mgrid[-7:8, -7:8]
    w = patch / patch.sum()
    assert np.sum(w * xx**2) == pytest.approx(np.sum(w * yy**2), rel=0.03)
    assert abs(np.sum(w * xx * yy)) < 0.03 * np.sum(w * xx**2)
