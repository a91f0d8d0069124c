"""Specimen builders: geometry against independent 3D constructions, stoichiometry, randomness."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.physics import crystals
from stemjax.physics.crystals import (
    gan,
    mx2_monolayer,
    nanoparticle_on_support,
    perovskite,
    project_columns,
    sige,
)
from stemjax.physics.scan import ScanGrid
from stemjax.physics.specimen import DEFAULT_DISPLACEMENT_THRESHOLD_EV

KEY = jax.random.key(20240611)


def _numpy(specimen):
    """The specimen with NumPy leaves, so slicing it in a test compiles nothing."""
    return jax.tree.map(np.asarray, specimen)


def _stack(specimens):
    """Stack specimens along a new leading axis, in NumPy (no compilation)."""
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *specimens)


def _leaves_equal(a, b) -> bool:
    return all(
        np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def _columns_by_rotation(cart, frame, box, decimals=3):
    """Independent projection: rotate Cartesian atoms (N, 3) into ``frame`` (rows x, y, beam),
    keep those inside the half-open ``box`` and count atoms per rounded (x, y)."""
    local = cart @ np.asarray(frame).T
    eps = 1e-6
    inside = np.all((local >= -eps) & (local < np.asarray(box) - eps), axis=1)
    xy = np.round(local[inside, :2], decimals) + 0.0
    keys, counts = np.unique(xy, axis=0, return_counts=True)
    return keys, counts


def _same_points(a, b, atol=2e-3) -> bool:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape:
        return False
    d = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)
    return bool(np.all(d.min(axis=1) < atol) and np.all(d.min(axis=0) < atol))


def _nearest_other(xy_from, xy_to, period=None):
    """Distance from each point of ``xy_from`` to the nearest distinct point of ``xy_to``
    (minimum image when ``period`` (2,) is given)."""
    diff = np.asarray(xy_from)[:, None] - np.asarray(xy_to)[None]
    if period is not None:
        diff = diff - np.asarray(period) * np.round(diff / np.asarray(period))
    d = np.linalg.norm(diff, axis=-1)
    d[d < 1e-6] = np.inf
    return d.min(axis=1)


# --------------------------------------------------------------------------------------------
# perovskites


def test_perovskite_srtio3_sites_and_stoichiometry():
    s = _numpy(perovskite("SrTiO3", cells=(3, 2), thickness=100.0))
    a = 3.905
    assert s.capacity == 5 * 3 * 2
    layers = round(100.0 / a)  # 26
    np.testing.assert_allclose(s.counts, layers)
    np.testing.assert_allclose(s.cell, [3 * a, 2 * a, layers * a], rtol=1e-6)
    z = np.asarray(s.atomic_numbers)
    totals = {el: float(np.sum(np.asarray(s.counts)[z == n])) for el, n in
              (("Sr", 38), ("Ti", 22), ("O", 8))}
    assert totals["O"] == 3 * totals["Sr"] == 3 * totals["Ti"] == 3 * 6 * layers
    # first cell: A (0,0); B and apical O at (a/2, a/2); O at (a/2, 0), (0, a/2)
    np.testing.assert_allclose(s.positions[:5, :2], np.array(
        [[0, 0], [0.5, 0.5], [0.5, 0.5], [0.5, 0], [0, 0.5]]) * a, atol=1e-5)
    np.testing.assert_allclose(s.positions[:5, 2], np.array([0, 0.5, 0, 0.5, 0.5]) * a, atol=1e-5)
    xy = np.asarray(s.atom_xy)
    sr, ti = xy[z == 38], xy[z == 22]
    assert _nearest_other(sr, ti).min() == pytest.approx(a / math.sqrt(2), abs=1e-4)
    assert bool(np.all(np.asarray(s.atom_types) == 0)) and bool(np.all(s.present))


def test_perovskite_batio3_tetragonal_c_along_beam():
    s = _numpy(perovskite("BaTiO3", cells=(2, 2), thickness=100.0))
    layers = round(100.0 / 4.036)  # 25
    np.testing.assert_allclose(s.cell, [2 * 3.992, 2 * 3.992, layers * 4.036], rtol=1e-6)
    assert set(np.asarray(s.atomic_numbers).tolist()) == {56, 22, 8}
    assert perovskite("SrTiO3", cells=(1, 1), thickness=1.0).counts[0] == 1.0  # at least one


def test_perovskite_errors():
    with pytest.raises(ValueError, match=r"material must be one of \['BaTiO3', 'SrTiO3'\]"):
        perovskite("PbTiO3")
    with pytest.raises(ValueError, match="thickness must be > 0"):
        perovskite(thickness=-5.0)
    with pytest.raises(ValueError, match=r"cells\[0\] must be an integer >= 1; got 0"):
        perovskite(cells=(0, 3))
    with pytest.raises(ValueError, match="cells must be a pair"):
        perovskite(cells=4)


# --------------------------------------------------------------------------------------------
# SiGe [110]


def test_diamond_110_projection_matches_rotated_3d_lattice():
    a = 5.431
    fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    basis = np.concatenate([fcc, fcc + 0.25])
    n = np.arange(-4, 5)
    shifts = np.stack(np.meshgrid(n, n, n, indexing="ij"), -1).reshape(-1, 1, 3)
    cart = ((shifts + basis[None]) * a).reshape(-1, 3)
    frame = np.array([[1, -1, 0], [0, 0, 1], [1, 1, 0]]) / np.array([[2**0.5], [1], [2**0.5]])
    box = (a / 2**0.5, a, a / 2**0.5)
    keys, per_period = _columns_by_rotation(cart, frame, box)

    expected = np.array([[0, 0], [0, a / 4], [a / (2 * 2**0.5), a / 2],
                         [a / (2 * 2**0.5), 3 * a / 4]])
    assert _same_points(keys, expected)
    assert np.all(per_period == 1)  # one atom per column per beam period a/√2

    s = _numpy(sige(KEY, 0.0, cells=(12, 8), thickness=100.0))
    assert _same_points(np.unique(np.asarray(s.positions)[:8, :2], axis=0), expected)
    # dumbbell: each column's nearest neighbour is a/4 = 1.358 Å away (projected)
    assert np.allclose(_nearest_other(expected, expected), a / 4)
    assert a / 4 == pytest.approx(1.358, abs=1e-3)


def test_sige_alloy_statistics_and_vegard():
    x = 0.3
    s = _numpy(sige(KEY, x, cells=(12, 8), thickness=100.0))
    a = 0.7 * 5.431 + 0.3 * 5.658
    atoms = round(100.0 / (a / 2**0.5))
    assert s.capacity == 8 * 12 * 8
    np.testing.assert_allclose(s.cell, [12 * a / 2**0.5, 8 * a, atoms * a / 2**0.5], rtol=1e-5)
    counts = np.asarray(s.counts).reshape(-1, 2)  # (columns, [Si, Ge])
    np.testing.assert_array_equal(counts.sum(axis=1), atoms)
    assert np.all(np.asarray(s.atomic_numbers).reshape(-1, 2) == [14, 32])
    total = counts.size // 2 * atoms
    sd = math.sqrt(x * (1 - x) / total)
    assert abs(counts[:, 1].sum() / total - x) < 4 * sd
    # per-column spread is binomial: variance ≈ N x (1 - x)
    assert counts[:, 1].var() == pytest.approx(atoms * x * (1 - x), rel=0.25)
    assert np.all(np.asarray(s.atom_types) == 0)  # an alloy, not defects
    np.testing.assert_array_equal(s.present, s.counts > 0)
    # the dumbbell scales with the Vegard lattice parameter
    xy = np.unique(np.asarray(s.positions)[:8, :2], axis=0)
    assert np.allclose(_nearest_other(xy, xy), a / 4, atol=1e-4)


def test_sige_keys_vmap_jit_and_capacity():
    build = functools.partial(sige, germanium_fraction=0.4, cells=(12, 8), thickness=100.0)
    keys = jax.random.split(KEY, 4)
    loop = [build(k) for k in keys]
    assert _leaves_equal(build(keys[0]), loop[0])  # same key, same specimen
    assert not np.array_equal(loop[0].counts, loop[1].counts)  # different keys differ
    assert {s.capacity for s in loop} == {768}  # capacity independent of the key
    assert _leaves_equal(jax.jit(build)(keys[1]), loop[1])
    # vmap over keys and (traced) germanium fractions equals the loop; x = 0 is pure Si and
    # x = 1 pure Ge
    xs = jnp.array([0.4, 0.4, 0.0, 1.0])
    batch = jax.vmap(lambda k, x: build(k, germanium_fraction=x))(keys, xs)
    loop[2:] = [build(keys[2], germanium_fraction=0.0), build(keys[3], germanium_fraction=1.0)]
    assert _leaves_equal(batch, _stack(loop))
    assert np.all(np.asarray(batch.counts)[2, 1::2] == 0)
    assert np.all(np.asarray(batch.counts)[3, 0::2] == 0)


def test_sige_errors():
    with pytest.raises(ValueError, match=r"germanium_fraction must lie in \[0.0, 1.0\]; got 1.5"):
        sige(KEY, 1.5)
    with pytest.raises(ValueError, match="thickness must be > 0"):
        sige(KEY, 0.2, thickness=0.0)


# --------------------------------------------------------------------------------------------
# GaN [11-20]


def test_gan_projection_matches_rotated_3d_lattice():
    a, c, u = 3.189, 5.185, 0.377
    a1, a2, a3 = np.array([a, 0, 0]), np.array([-a / 2, a * 3**0.5 / 2, 0]), np.array([0, 0, c])
    frac = np.array([[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, u],
                     [2 / 3, 1 / 3, 0.5 + u]])
    species = np.array([31, 31, 7, 7])
    n = np.arange(-6, 7)
    shifts = np.stack(np.meshgrid(n, n, n, indexing="ij"), -1).reshape(-1, 1, 3)
    lattice = np.stack([a1, a2, a3])
    cart = (shifts + frac[None]) @ lattice  # (t, 4, 3)
    ex = (a1 - a2) / np.linalg.norm(a1 - a2)  # [1-100]
    ey = np.array([0.0, 0.0, 1.0])  # [0001]
    eb = np.cross(ex, ey)  # ∥ [11-20]
    assert abs(abs(eb @ (a1 + a2)) / a - 1) < 1e-12  # beam period a
    frame, box = np.stack([ex, ey, eb]), (3**0.5 * a, c, a)

    s = _numpy(gan(cells=(1, 1), thickness=100.0))
    assert s.capacity == 8
    xy = np.asarray(s.atom_xy)
    z = np.asarray(s.atomic_numbers)
    for element in (31, 7):
        keys, per_period = _columns_by_rotation(
            cart[:, species == element].reshape(-1, 3), frame, box)
        assert len(keys) == 4 and np.all(per_period == 1)
        assert _same_points(xy[z == element], keys)
    # projected Ga–N dumbbell: Δx = a/(2√3), Δy = (1/2 − u) c, about 1.12 Å
    dumbbell = math.hypot(a / (2 * 3**0.5), (0.5 - u) * c)
    assert dumbbell == pytest.approx(1.12, abs=0.005)
    assert np.allclose(_nearest_other(xy[z == 31], xy[z == 7], box[:2]), dumbbell, atol=1e-4)
    # and each Ga has an N straight along [0001] at u·c
    d = xy[z == 7][None] - xy[z == 31][:, None]
    along_c = np.isclose(d[..., 0], 0, atol=1e-4) & np.isclose(np.abs(d[..., 1]), u * c, atol=1e-4)
    assert np.all(along_c.any(axis=1))
    np.testing.assert_allclose(s.counts, round(100.0 / a))
    np.testing.assert_allclose(s.cell, [3**0.5 * a, c, round(100.0 / a) * a], rtol=1e-6)


def test_gan_stoichiometry_and_errors():
    s = _numpy(gan(cells=(3, 2), thickness=50.0))
    z, n = np.asarray(s.atomic_numbers), np.asarray(s.counts)
    assert n[z == 31].sum() == n[z == 7].sum() == 4 * 6 * round(50.0 / 3.189)
    with pytest.raises(ValueError, match=r"cells\[1\] must be an integer >= 1"):
        gan(cells=(2, -1))


def test_project_columns_rejects_a_box_that_is_not_a_cell():
    with pytest.raises(ValueError, match="not a periodic cell"):
        project_columns(np.eye(3), [[0, 0, 0]], (1, 0, 0), (0, 1, 0), (1.5, 1.0), 1.0)


# --------------------------------------------------------------------------------------------
# TMD monolayers


def test_mx2_geometry_and_stoichiometry():
    s = _numpy(mx2_monolayer(KEY, "MoS2", cells=(4, 4)))
    a, h = 3.160, 1.56
    assert s.capacity == 6 * 16
    z = np.asarray(s.atomic_numbers)
    assert (z == 42).sum() * 2 == (z == 16).sum()
    np.testing.assert_allclose(s.counts, 1.0)
    np.testing.assert_allclose(s.cell, [4 * a, 4 * 3**0.5 * a, 2 * h + 3.0], rtol=1e-6)
    xy = np.asarray(s.atom_xy)
    mo, sx = xy[z == 42], xy[z == 16]
    # projected Mo–S distance a/√3, with three S columns around each interior Mo
    assert np.allclose(_nearest_other(mo, sx), a / 3**0.5, atol=1e-4)
    d = np.linalg.norm(mo[:, None] - sx[None], axis=-1)
    interior = np.all((mo > 2 * a) & (mo < np.asarray(s.cell[:2]) - 2 * a), axis=1)
    assert np.all(np.sum(np.isclose(d[interior], a / 3**0.5, atol=1e-3), axis=1) == 6)  # 3 × 2
    # chalcogens ±h about the metal plane, top and bottom share (x, y)
    zz = np.asarray(s.positions[:, 2])
    np.testing.assert_allclose(zz[3::6] - zz[2::6], 2 * h, atol=1e-5)
    np.testing.assert_allclose(s.positions[3::6, :2], s.positions[2::6, :2])
    np.testing.assert_allclose(zz[0::6] - zz[2::6], h, atol=1e-5)
    # displacement thresholds: S in MoS2 6.9 eV (Komsa 2012); metals the default
    thr = np.asarray(s.displacement_threshold_ev)
    assert np.all(thr[z == 16] == pytest.approx(6.9)) and np.all(thr[z == 42] == 20.0)
    assert np.all(np.asarray(s.atom_types) == 0)
    # vacancies without a dopant
    holes = _numpy(mx2_monolayer(KEY, "MoS2", cells=(4, 4), double_vacancy_fraction=1.0))
    np.testing.assert_array_equal(holes.atom_types == 1, z == 16)


@pytest.mark.parametrize(
    "material, metal, chalcogen, a",
    [("WS2", 74, 16, 3.153), ("MoSe2", 42, 34, 3.288), ("WSe2", 74, 34, 3.282)],
)
def test_mx2_other_materials(material, metal, chalcogen, a):
    s = _numpy(mx2_monolayer(KEY, material, cells=(1, 1)))
    assert list(np.asarray(s.atomic_numbers)) == [metal] * 2 + [chalcogen] * 4
    np.testing.assert_allclose(s.cell[:2], [a, 3**0.5 * a], rtol=1e-6)
    np.testing.assert_allclose(s.displacement_threshold_ev[2:], DEFAULT_DISPLACEMENT_THRESHOLD_EV)


def test_mx2_defect_statistics():
    f_dop, f_single, f_double = 0.1, 0.15, 0.05
    s = _numpy(mx2_monolayer(KEY, "MoS2", cells=(40, 24), dopant="V", dopant_fraction=f_dop,
                      single_vacancy_fraction=f_single, double_vacancy_fraction=f_double))
    types = np.asarray(s.atom_types).reshape(-1, 6)
    numbers = np.asarray(s.atomic_numbers).reshape(-1, 6)
    occ = np.asarray(s.occupancies).reshape(-1, 6)
    metal_types = types[:, :2].ravel()
    n_metal = metal_types.size
    doped = metal_types == 2
    assert abs(doped.mean() - f_dop) < 4 * math.sqrt(f_dop * (1 - f_dop) / n_metal)
    assert np.all(numbers[:, :2].ravel()[doped] == 23)  # vanadium
    assert np.all(numbers[:, :2].ravel()[~doped] == 42)
    # chalcogen columns: 0, 1 or 2 atoms removed
    removed = (types[:, 2:] == 1).reshape(-1, 2, 2).sum(axis=2).ravel()
    n_col = removed.size
    for k, p in ((2, f_double), (1, f_single), (0, 1 - f_single - f_double)):
        assert abs((removed == k).mean() - p) < 4 * math.sqrt(p * (1 - p) / n_col)
    assert np.all(occ[types == 1] == 0.0) and np.all(occ[types != 1] == 1.0)
    assert np.all(numbers[:, 2:] == 16)  # vacancies keep the missing element


def test_mx2_single_and_double_vacancies_exactly():
    build = functools.partial(mx2_monolayer, KEY, "MoS2", cells=(40, 24), dopant="V")
    both = _numpy(build(double_vacancy_fraction=1.0))
    t = np.asarray(both.atom_types).reshape(-1, 6)
    assert np.all(t[:, 2:] == 1) and np.all(t[:, :2] == 0)
    assert np.all(np.asarray(both.occupancies).reshape(-1, 6)[:, 2:] == 0)
    one = _numpy(build(single_vacancy_fraction=1.0))
    pairs = np.asarray(one.atom_types).reshape(-1, 6)[:, 2:].reshape(-1, 2)
    assert np.all(pairs.sum(axis=1) == 1)  # exactly one of top/bottom
    assert 0 < pairs[:, 0].sum() < len(pairs)  # both sides are chosen


def test_mx2_keys_vmap_jit_and_capacity():
    build = functools.partial(mx2_monolayer, material="MoS2", cells=(40, 24), dopant="V",
                              dopant_fraction=0.3, single_vacancy_fraction=0.3,
                              double_vacancy_fraction=0.2)
    keys = jax.random.split(KEY, 3)
    loop = [build(k) for k in keys]
    assert _leaves_equal(build(keys[0]), loop[0])
    assert not np.array_equal(loop[0].atom_types, loop[1].atom_types)
    batch = jax.vmap(build)(keys)
    assert batch.positions.shape == (3, 5760, 3)
    assert _leaves_equal(batch, _stack(loop))
    assert _leaves_equal(jax.jit(build)(keys[2]), loop[2])


def test_mx2_errors():
    with pytest.raises(ValueError, match=r"material must be one of \['MoS2', 'MoSe2', 'WS2', "):
        mx2_monolayer(KEY, "MoTe2")
    with pytest.raises(ValueError, match="dopant must be an element symbol"):
        mx2_monolayer(KEY, dopant_fraction=0.1)
    with pytest.raises(ValueError, match="dopant must be an element symbol H…U"):
        mx2_monolayer(KEY, dopant="Xx", dopant_fraction=0.1)
    with pytest.raises(ValueError, match=r"dopant_fraction must lie in \[0.0, 1.0\]; got -0.1"):
        mx2_monolayer(KEY, dopant="V", dopant_fraction=-0.1)
    with pytest.raises(ValueError, match="single_vacancy_fraction \\+ double_vacancy_fraction"):
        mx2_monolayer(KEY, single_vacancy_fraction=0.6, double_vacancy_fraction=0.6)


# --------------------------------------------------------------------------------------------
# nanoparticle on a support


def _fcc_atoms_in_sphere(a, radius):
    """Independent count: conventional cubes with a 4-atom basis, atoms within radius of an atom
    at the origin; returns {(x, y) rounded: atoms}."""
    n = np.arange(-int(radius / a) - 2, int(radius / a) + 3)
    cubes = np.stack(np.meshgrid(n, n, n, indexing="ij"), -1).reshape(-1, 1, 3)
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    atoms = ((cubes + basis[None]) * a).reshape(-1, 3)
    atoms = atoms[np.linalg.norm(atoms, axis=1) <= radius + 1e-9]
    keys, counts = np.unique(np.round(atoms[:, :2], 3), axis=0, return_counts=True)
    return keys, counts


def test_particle_columns_match_brute_force_count():
    s = _numpy(nanoparticle_on_support(KEY, "Au", radius=12.0, cell=(40.0, 40.0),
                                       support_thickness=0.0))
    present, phases = np.asarray(s.present), np.asarray(s.phases)
    assert np.all(present == (phases == 1))  # no film
    keys, counts = _fcc_atoms_in_sphere(4.078, 12.0)
    xy = np.asarray(s.positions)[phases == 1, :2] - 20.0
    assert _same_points(xy, keys)
    order = np.lexsort(np.round(xy, 3).T[::-1])
    np.testing.assert_array_equal(np.asarray(s.counts)[phases == 1][order], counts)
    # the same exact count for Pt (a = 3.924 Å), from the column helper the builder uses
    offsets, atoms, _ = crystals._fcc_sphere_columns(3.924, 12.0)
    keys, counts = _fcc_atoms_in_sphere(3.924, 12.0)
    order = np.lexsort(np.round(offsets, 3).T[::-1])
    assert _same_points(offsets, keys)
    np.testing.assert_array_equal(atoms[order], counts)


def test_particle_size_matches_bulk_density():
    a = 4.078
    for radius in (10.0, 20.0, 30.0):
        offsets, atoms, _ = crystals._fcc_sphere_columns(a, radius)
        continuum = 4 / a**3 * 4 / 3 * math.pi * radius**3
        assert atoms.sum() == pytest.approx(continuum, rel=0.02)


def test_nanoparticle_support_density_and_phase_map():
    s = _numpy(nanoparticle_on_support(KEY, "Au", radius=12.0, cell=(40.0, 40.0),
                                       support_thickness=30.0, support_density=2.0))
    phases = np.asarray(s.phases)
    support = phases == 0
    assert support.sum() == round(40 * 40 / 2.0)  # one column per 2 Å²
    # areal density = ρ N_A / M · t = 2.0 g/cm³ · 6.022e23 / 12.011 g/mol · 1e-24 · 30 Å
    expected = 2.0 * 6.02214076e23 / 12.011 * 1e-24 * 30.0
    assert expected == pytest.approx(3.008, abs=1e-3)
    areal = np.asarray(s.counts)[support].sum() / (40.0 * 40.0)
    assert areal == pytest.approx(expected, rel=1e-5)
    assert np.all(np.asarray(s.atomic_numbers)[support] == 6)
    xy = np.asarray(s.atom_xy)[support]
    assert np.all((xy >= 0) & (xy < 40.0))
    sd = 40.0 / math.sqrt(12 * len(xy))
    assert np.all(np.abs(xy.mean(axis=0) - 20.0) < 4 * sd)
    # particle centred in the cell, on top of the film
    pxy, pn = np.asarray(s.atom_xy)[~support], np.asarray(s.counts)[~support]
    np.testing.assert_allclose((pxy * pn[:, None]).sum(0) / pn.sum(), [20.0, 20.0], atol=1e-4)
    np.testing.assert_allclose(s.cell, [40.0, 40.0, 54.0])
    assert np.all(np.asarray(s.positions[:, 2])[support] == 24.0)
    assert np.asarray(s.positions[:, 2])[~support].min() >= 0.0
    # phase map: 1 inside the particle outline, 0 outside
    grid = ScanGrid((21, 21), 2.0)
    pm = np.asarray(jax.jit(lambda t: t.phase_map(grid))(s))
    assert pm[10, 10] == 1 and pm[10, 16] == 0 and pm[0, 0] == 0
    assert pm.sum() == pytest.approx(math.pi * 12.0**2 / 4.0, rel=0.1)


def test_nanoparticle_keys_vmap_and_capacity():
    build = functools.partial(nanoparticle_on_support, element="Au", radius=12.0,
                              cell=(40.0, 40.0))
    keys = jax.random.split(KEY, 2)
    one, two = build(keys[0]), build(keys[1])
    assert one.capacity == two.capacity
    assert _leaves_equal(build(keys[0]), one)
    assert not np.array_equal(one.positions, two.positions)
    batch = jax.vmap(build)(keys)
    assert _leaves_equal(batch, _stack([one, two]))


def test_nanoparticle_errors():
    with pytest.raises(ValueError, match=r"element must be one of \['Ag', 'Au', 'Pd', 'Pt'\]; "
                                         r"got 'Cu'"):
        nanoparticle_on_support(KEY, "Cu")
    with pytest.raises(ValueError, match=r"radius must lie in \(0, 32.0\] Å"):
        nanoparticle_on_support(KEY, "Au", radius=40.0, cell=(64.0, 64.0))
    with pytest.raises(ValueError, match="radius must be > 0"):
        nanoparticle_on_support(KEY, "Au", radius=-1.0)
    with pytest.raises(ValueError, match="support_element must be an element symbol"):
        nanoparticle_on_support(KEY, support_element="Qq")
    with pytest.raises(ValueError, match="support_density must be > 0 g/cm³"):
        nanoparticle_on_support(KEY, support_density=0.0)
    with pytest.raises(ValueError, match="support_thickness must be >= 0"):
        nanoparticle_on_support(KEY, support_thickness=-3.0)
