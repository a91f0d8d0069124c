"""Point defects, paired (chalcogen) vacancies, phase domains and rotated copies."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.physics.defects import (
    add_paired_vacancies,
    add_phase_domains,
    add_point_defects,
    inside_domains,
    rotated,
)
from stemjax.physics.scan import ScanGrid
from stemjax.physics.specimen import make_specimen

KEY = jax.random.key(7)


def _numpy(specimen):
    return jax.tree.map(np.asarray, specimen)


def _leaves_equal(a, b) -> bool:
    return all(
        np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def _stack(specimens):
    """Stack specimens along a new leading axis, in NumPy (no compilation)."""
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *specimens)


def _grid_specimen(side: int, spacing: float, z: int, *, present=None, offset=0.0):
    """side × side sites of element z on a square grid, cell side·spacing Å, all as arrays."""
    i, j = np.meshgrid(np.arange(side), np.arange(side), indexing="xy")
    xy = (np.stack([i.ravel(), j.ravel()], 1) + offset) * spacing
    n = side * side
    return make_specimen(
        np.column_stack([xy, np.zeros(n)]),
        np.full(n, z),
        (side * spacing, side * spacing, 10.0),
        counts=np.full(n, 5.0),
        occupancies=np.ones(n),
        debye_waller=np.full(n, 0.5),
        displacement_threshold_ev=np.full(n, 20.0),
        atom_types=np.zeros(n, np.int32),
        phases=np.zeros(n, np.int32),
        present=np.ones(n, bool) if present is None else present,
    )


N_SIDE = 120  # 14 400 sites
PRESENT = np.arange(N_SIDE**2) < N_SIDE**2 - 400  # the last 400 slots unused
ELIGIBLE = np.arange(N_SIDE**2) % 2 == 0
BASE = _grid_specimen(N_SIDE, 1.0, 42, present=PRESENT)
add_w = functools.partial(add_point_defects, sites=ELIGIBLE, substitute="W")


# --------------------------------------------------------------------------------------------
# point defects


def test_point_defect_fractions_and_bookkeeping():
    f_vac, f_sub = 0.1, 0.2
    out = _numpy(add_w(KEY, BASE, vacancy_fraction=f_vac, substitution_fraction=f_sub))
    base = _numpy(BASE)
    chosen = ELIGIBLE & PRESENT
    vac = out.atom_types == 1
    sub = out.atom_types == 2
    assert not np.any((vac | sub) & ~chosen)  # only eligible, present sites change
    for name in ("positions", "counts", "occupancies", "atomic_numbers", "atom_types"):
        np.testing.assert_array_equal(getattr(out, name)[~chosen], getattr(base, name)[~chosen])
    n = chosen.sum()
    for mask, p in ((vac, f_vac), (sub, f_sub)):
        assert abs(mask.sum() / n - p) < 4 * math.sqrt(p * (1 - p) / n)
    assert np.all(out.occupancies[vac] == 0) and np.all(out.atomic_numbers[vac] == 42)
    assert np.all(out.occupancies[sub] == 1) and np.all(out.atomic_numbers[sub] == 74)
    assert np.all(out.atomic_numbers[chosen & ~vac & ~sub] == 42)
    np.testing.assert_array_equal(out.present, PRESENT)  # vacancies stay in their slots
    assert np.array_equal((out.atom_types != 0) & out.present, out.defect_mask)


def test_point_defects_keys_jit_and_vmap():
    keys = jax.random.split(KEY, 3)
    build = functools.partial(add_w, vacancy_fraction=0.05, substitution_fraction=0.05)
    loop = [build(k, BASE) for k in keys]
    assert _leaves_equal(build(keys[0], BASE), loop[0])  # same key, same specimen
    assert not np.array_equal(loop[0].atom_types, loop[1].atom_types)
    batch = jax.vmap(build, in_axes=(0, None))(keys, BASE)
    assert _leaves_equal(batch, _stack(loop))
    assert _leaves_equal(jax.jit(build)(keys[2], BASE), loop[2])
    # fractions may be traced: 0 leaves the specimen alone, 1 empties every eligible site
    ends = jax.vmap(lambda f: add_w(KEY, BASE, vacancy_fraction=f))(np.array([0.0, 1.0]))
    types = np.asarray(ends.atom_types)
    assert np.all(types[0] == 0)
    np.testing.assert_array_equal(types[1] == 1, ELIGIBLE & PRESENT)


def test_point_defect_errors():
    with pytest.raises(ValueError, match=r"vacancy_fraction must lie in \[0.0, 1.0\]; got 1.2"):
        add_w(KEY, BASE, vacancy_fraction=1.2)
    with pytest.raises(ValueError, match=r"substitution_fraction must lie in \[0.0, 1.0\]"):
        add_w(KEY, BASE, substitution_fraction=-0.1)
    with pytest.raises(ValueError, match="vacancy_fraction \\+ substitution_fraction must be <= 1"):
        add_w(KEY, BASE, vacancy_fraction=0.6, substitution_fraction=0.5)
    with pytest.raises(ValueError, match="substitute must be an element symbol .* when"):
        add_point_defects(KEY, BASE, sites=ELIGIBLE, substitution_fraction=0.1)
    with pytest.raises(ValueError, match="substitute must be an element symbol H…U"):
        add_point_defects(KEY, BASE, sites=ELIGIBLE, substitution_fraction=0.1, substitute="Zz")
    with pytest.raises(ValueError, match=r"sites must be a boolean mask of shape \(14400,\)"):
        add_point_defects(KEY, BASE, sites=ELIGIBLE[:10], vacancy_fraction=0.1)


# --------------------------------------------------------------------------------------------
# paired vacancies

PAIRS = np.arange(N_SIDE**2).reshape(-1, 2)  # sites 2k and 2k+1 form column k


def test_paired_vacancies_single_and_double():
    both = _numpy(add_paired_vacancies(KEY, BASE, pairs=PAIRS, double_fraction=1.0))
    np.testing.assert_array_equal(both.atom_types == 1, PRESENT)  # every present site
    assert np.all(both.occupancies[PRESENT] == 0)
    one = _numpy(add_paired_vacancies(KEY, BASE, pairs=PAIRS, single_fraction=1.0))
    removed = (one.atom_types == 1)[PAIRS]
    live = PRESENT[PAIRS].all(axis=1)
    assert np.all(removed[live].sum(axis=1) == 1)
    first = removed[live, 0].mean()  # top or bottom with equal probability
    assert abs(first - 0.5) < 4 * math.sqrt(0.25 / live.sum())
    assert not np.any(removed[~PRESENT[PAIRS]])


def test_paired_vacancy_statistics():
    f_single, f_double = 0.2, 0.1
    out = _numpy(add_paired_vacancies(KEY, BASE, pairs=PAIRS, single_fraction=f_single,
                                      double_fraction=f_double))
    live = PRESENT[PAIRS].all(axis=1)
    lost = (out.atom_types == 1)[PAIRS][live].sum(axis=1)
    n = live.sum()
    for k, p in ((2, f_double), (1, f_single), (0, 1 - f_single - f_double)):
        assert abs((lost == k).mean() - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_paired_vacancy_errors():
    with pytest.raises(ValueError, match="single_fraction \\+ double_fraction must be <= 1"):
        add_paired_vacancies(KEY, BASE, pairs=PAIRS, single_fraction=0.7, double_fraction=0.4)
    with pytest.raises(ValueError, match=r"double_fraction must lie in \[0.0, 1.0\]"):
        add_paired_vacancies(KEY, BASE, pairs=PAIRS, double_fraction=2.0)
    with pytest.raises(ValueError, match=r"pairs must be an integer array of shape \(m, 2\)"):
        add_paired_vacancies(KEY, BASE, pairs=np.arange(6), single_fraction=0.1)
    with pytest.raises(ValueError, match="pairs must not name any site twice"):
        add_paired_vacancies(KEY, BASE, pairs=[[0, 1], [1, 2]], single_fraction=0.1)
    with pytest.raises(ValueError, match=r"pairs must hold site indices in \[0, 14399\]"):
        add_paired_vacancies(KEY, BASE, pairs=[[0, 20000]], single_fraction=0.1)


# --------------------------------------------------------------------------------------------
# phase domains

MATRIX = _grid_specimen(50, 1.0, 6)  # 50 × 50 Å, 25 nm²
SECOND = _grid_specimen(50, 1.0, 14, offset=0.5)
domains_of = functools.partial(add_phase_domains, density=0.08, radius=6.0, max_domains=8)


def test_phase_domains_replace_matrix_inside_discs():
    out = _numpy(domains_of(jax.random.key(3), MATRIX, SECOND, density=0.2))  # mean 5
    assert out.positions.shape == (5000, 3) and out.domains.shape == (8, 3)
    used = out.domains[:, 2] > 0
    assert used.any()
    np.testing.assert_array_equal(out.domains[used, 2], 6.0)
    np.testing.assert_array_equal(out.domains[~used], 0.0)  # unused slots: radius 0
    assert np.all((out.domains[used, :2] >= 0) & (out.domains[used, :2] <= 50.0))
    inside = np.asarray(jax.jit(inside_domains)(out.positions[:, :2], out.domains))
    is_second = np.arange(5000) >= 2500
    np.testing.assert_array_equal(out.present, np.where(is_second, inside, ~inside))
    np.testing.assert_array_equal(out.phases, is_second.astype(int))
    np.testing.assert_array_equal(out.atomic_numbers, np.where(is_second, 14, 6))
    # phase_map: 1 at a domain centre, 0 far from every domain
    grid = ScanGrid((50, 50), 1.0)
    pm = np.asarray(jax.jit(lambda s: s.phase_map(grid))(out))
    cx, cy = np.minimum(np.round(out.domains[used][0, :2]), 49).astype(int)
    assert pm[cy, cx] == 1
    yy, xx = np.mgrid[0:50, 0:50]
    d2 = (xx[..., None] - out.domains[:, 0]) ** 2 + (yy[..., None] - out.domains[:, 1]) ** 2
    np.testing.assert_array_equal(pm, np.any(d2 < out.domains[:, 2] ** 2, axis=-1))
    assert pm.sum() > 0 and (1 - pm).sum() > 0


def test_phase_domain_count_is_poisson_and_clipped():
    keys = jax.random.split(KEY, 400)
    batch = _numpy(jax.vmap(domains_of, in_axes=(0, None, None))(keys, MATRIX, SECOND))
    counts = (batch.domains[..., 2] > 0).sum(axis=1)
    mean = 0.08 * 25.0  # density × area in nm²
    assert abs(counts.mean() - mean) < 4 * math.sqrt(mean / 400)
    assert counts.var() == pytest.approx(mean, rel=0.3)
    # vmap over keys equals a loop
    loop = [domains_of(k, MATRIX, SECOND) for k in keys[:3]]
    assert _leaves_equal(jax.tree.map(lambda x: x[:3], batch), _stack(loop))
    assert _leaves_equal(jax.jit(domains_of)(keys[1], MATRIX, SECOND), loop[1])
    # a huge density fills every slot; zero density leaves the matrix alone
    full = _numpy(domains_of(KEY, MATRIX, SECOND, density=1e3))
    assert np.all(full.domains[:, 2] == 6.0)
    none = _numpy(domains_of(KEY, MATRIX, SECOND, density=0.0))
    assert np.all(none.domains == 0) and none.present.sum() == 2500
    assert not none.present[2500:].any()


def test_phase_domain_errors():
    with pytest.raises(ValueError, match="second must have the same cell"):
        add_phase_domains(KEY, MATRIX, _grid_specimen(20, 1.0, 14), density=0.1, radius=5.0)
    with pytest.raises(ValueError, match="density must be >= 0 per nm²"):
        add_phase_domains(KEY, MATRIX, SECOND, density=-1.0, radius=5.0)
    with pytest.raises(ValueError, match="radius must be >= 0 Å"):
        add_phase_domains(KEY, MATRIX, SECOND, density=0.1, radius=-5.0)
    with pytest.raises(ValueError, match="max_domains must be an integer >= 1; got 0"):
        add_phase_domains(KEY, MATRIX, SECOND, density=0.1, radius=5.0, max_domains=0)


# --------------------------------------------------------------------------------------------
# rotated copies


def test_rotated_about_cell_centre_and_wrapped():
    spec = make_specimen(np.array([[30.0, 25.0, 1.0], [25.0, 25.0, 2.0], [49.0, 1.0, 0.0]]),
                         np.array([6, 7, 8]), (50.0, 50.0, 5.0), domains=[[35.0, 25.0, 4.0]])
    quarter = _numpy(rotated(spec, 90.0))
    # (30, 25) is 5 Å right of the centre: a quarter turn puts it 5 Å above
    np.testing.assert_allclose(quarter.positions[:2], [[25.0, 30.0, 1.0], [25.0, 25.0, 2.0]],
                               atol=1e-4)
    # (49, 1) → (25 − (1 − 25), 25 + (49 − 25)) = (49, 49)
    np.testing.assert_allclose(quarter.positions[2, :2], [49.0, 49.0], atol=1e-4)
    np.testing.assert_allclose(quarter.domains, [[25.0, 35.0, 4.0]], atol=1e-4)
    half = _numpy(rotated(spec, 180.0))
    np.testing.assert_allclose(half.positions[2, :2], [1.0, 49.0], atol=1e-4)
    same = _numpy(rotated(spec, 0.0))
    np.testing.assert_allclose(same.positions, np.asarray(spec.positions), atol=1e-5)
    # a generic angle keeps everything inside the cell and every other field unchanged
    turned = _numpy(rotated(MATRIX, 17.0))
    assert np.all((turned.positions[:, :2] >= 0) & (turned.positions[:, :2] < 50.0))
    np.testing.assert_array_equal(turned.atomic_numbers, np.asarray(MATRIX.atomic_numbers))
    # near the centre nothing is wrapped: the lattice bonds simply turn by 17°
    central = np.hypot(*(turned.positions[:, :2] - 25.0).T) < 12.0
    assert np.allclose(_bond_angles(turned.positions[central]), 17.0, atol=1e-3)
    with pytest.raises(ValueError, match="angle_deg must be finite"):
        rotated(spec, float("nan"))


def test_rotated_copy_as_second_orientation():
    out = _numpy(add_phase_domains(KEY, MATRIX, rotated(MATRIX, 30.0), density=0.3, radius=8.0))
    inside = out.phases == 1
    assert out.present[inside].any() and out.present[~inside].any()
    # inside the domains the lattice rows run at 30° (apart from the seams where the rotated
    # copy was wrapped into the cell); outside they run along x and y
    assert np.mean(np.isclose(_bond_angles(out.positions[out.present & inside]), 30.0,
                              atol=1e-3)) > 0.8
    assert np.allclose(_bond_angles(out.positions[out.present & ~inside]), 0.0, atol=1e-3)


def _bond_angles(positions):
    """Directions, mod 90°, of the 1 Å nearest-neighbour bonds between the given sites."""
    xy = positions[:, :2]
    d = xy[:, None] - xy[None]
    r = np.hypot(d[..., 0], d[..., 1])
    near = (r > 0.9) & (r < 1.1)
    return np.round(np.degrees(np.arctan2(d[..., 1][near], d[..., 0][near])), 6) % 90.0
