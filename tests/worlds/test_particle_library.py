"""Random particle libraries (paper 004): scale estimate, simulated libraries, instruments.

The motion time and cost of eqs. 5–6 themselves are tested in tests/acquisition/test_costs.py
(values within and beyond the beam-shift reach); here they enter through the time of a region
change.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.worlds import (
    ACTIONS,
    Instrument,
    LibraryConfig,
    composition_dimensions,
    edx_measure,
    eval_grid,
    expected_particle_count,
    make_library,
    measurement_times,
    overview_scan,
    region_change_times,
    simplex_grid,
    simplex_reestimate,
    target_function,
)

SMALL = LibraryConfig(area_um=(90.0, 90.0))  # 3 × 3 fields of view, ~162 particles


@pytest.fixture(scope="module")
def library():
    return make_library(jax.random.key(0), SMALL)


def test_r1_expected_count_and_dimensions():
    # checks.md R1: σ = 0.3 μ, 2.67 mm², 50 % coverage
    mu = np.array([500.0, 150.0, 50.0])
    count = expected_particle_count(2.67, 0.5, mu, 0.3 * mu)
    np.testing.assert_allclose(count, [1.6e6, 1.7e7, 1.6e8], rtol=0.04)
    # closed form: 1.335e12 nm² / (π · 1.09 μ²)
    np.testing.assert_allclose(count, 1.335e12 / (np.pi * 1.09 * mu**2), rtol=1e-12)
    np.testing.assert_array_equal(composition_dimensions(count), [6, 7, 8])
    assert int(composition_dimensions(1000.0)) == 3  # exact powers of ten count
    assert int(composition_dimensions(999.0)) == 2


def test_simplex_grid_and_eval_grid():
    grid = simplex_grid(3, 10)
    assert grid.shape == (66, 3)
    np.testing.assert_allclose(grid.sum(1), 1.0, atol=1e-6)
    assert len({tuple(np.round(r * 10).astype(int)) for r in grid}) == 66
    assert [eval_grid(q).shape[0] for q in (3, 4, 5)] == [66, 120, 126]


def test_eq2_eq3_reestimation_closed_form(dtype):
    c = jnp.array([[0.30, 0.50, 0.25], [0.2, 0.1, 0.68]], dtype)
    s = jnp.array([[0.01, 0.05, 0.02], [0.03, 0.01, 0.02]], dtype)
    out = simplex_reestimate(c, s)
    # row 0: k = 1 → c₁ = 1 − 0.30 − 0.25, σ₁ = (0.01² + 0.02²)^½
    np.testing.assert_allclose(out.compositions[0], [0.30, 0.45, 0.25], rtol=1e-6)
    np.testing.assert_allclose(out.sigmas[0], [0.01, math.hypot(0.01, 0.02), 0.02], rtol=1e-6)
    # row 1: k = 0 → c₀ = 1 − 0.1 − 0.68, σ₀ = (0.01² + 0.02²)^½ = σ_tot
    np.testing.assert_allclose(out.compositions[1], [0.22, 0.1, 0.68], rtol=1e-5)
    np.testing.assert_allclose(out.total_sigma, [math.hypot(0.01, 0.02)] * 2, rtol=1e-6)
    np.testing.assert_array_equal(out.reestimated, [1, 0])
    np.testing.assert_allclose(out.compositions.sum(-1), 1.0, rtol=0, atol=1e-6)
    assert out.compositions.dtype == dtype


def test_edx_counting_statistics_sum_to_one_unbiased_and_sharper_for_big_particles():
    true = jnp.array([0.2, 0.3, 0.5])
    n = 4000
    for radius in (10.0, 40.0):
        out = edx_measure(jax.random.key(int(radius)), jnp.broadcast_to(true, (n, 3)),
                          jnp.full((n,), radius))  # fmt: skip
        np.testing.assert_allclose(out.compositions.sum(-1), 1.0, atol=1e-5)
        spread = np.std(np.asarray(out.compositions), axis=0)
        np.testing.assert_allclose(np.mean(out.compositions, 0), true, atol=4 * spread.max() / np.sqrt(n))
        if radius == 10.0:
            small = float(np.mean(out.total_sigma))
        else:  # counts ∝ r³, so σ ∝ r^(-3/2): 8 times smaller at 4 times the radius
            np.testing.assert_allclose(small / float(np.mean(out.total_sigma)), 8.0, rtol=0.05)
    # the stated σ of a fraction matches its scatter (Poisson counting)
    out = edx_measure(jax.random.key(1), jnp.broadcast_to(true, (n, 3)), jnp.full((n,), 20.0))
    k = int(out.reestimated[0])
    others = [i for i in range(3) if i != k]
    np.testing.assert_allclose(np.std(np.asarray(out.compositions)[:, others], 0),
                               np.mean(np.asarray(out.sigmas)[:, others], 0), rtol=0.1)  # fmt: skip


def test_library_is_a_pure_function_of_the_key_and_vmaps(library):
    again = make_library(jax.random.key(0), SMALL)
    for a, b in zip(jax.tree.leaves(library), jax.tree.leaves(again)):
        np.testing.assert_array_equal(a, b)
    keys = jax.random.split(jax.random.key(5), 3)
    stack = jax.vmap(lambda k: make_library(k, SMALL))(keys)
    for i, k in enumerate(keys):
        one = make_library(k, SMALL)
        for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(stack)):
            np.testing.assert_allclose(a, b[i], rtol=1e-6, atol=1e-6)


def test_library_layout_regions_and_targets(library):
    present = np.asarray(library.present)
    n = int(present.sum())
    assert abs(n - 162) < 6 * math.sqrt(162)  # Poisson(ρA = 0.02 · 8100)
    pos = np.asarray(library.positions_um)[present]
    assert pos.min() >= 0 and pos.max() <= 90.0
    assert np.asarray(library.radii_nm)[present].min() >= SMALL.min_radius_nm
    comps = np.asarray(library.compositions)[present]
    np.testing.assert_allclose(comps.sum(1), 1.0, atol=1e-5)
    assert comps.min() >= 0
    # every particle sits in exactly one region slot, and inside that field of view
    members = np.asarray(library.members)[np.asarray(library.member_mask)]
    assert sorted(members.tolist()) == np.flatnonzero(present).tolist()
    centres = np.asarray(library.region_centres_um)
    for r in range(SMALL.n_regions):
        idx = np.asarray(library.members[r])[np.asarray(library.member_mask[r])]
        assert np.all(np.abs(np.asarray(library.positions_um)[idx] - centres[r]) <= 15.0 + 1e-4)
    np.testing.assert_allclose(np.asarray(library.region_areas_um2), 900.0)
    np.testing.assert_allclose(
        library.targets, target_function(library.compositions, library.peak_centres,
                                         library.peak_amplitudes, 0.1), rtol=1e-6)  # fmt: skip
    # an overview finds the region's particles that are large enough
    idx, found = overview_scan(library, 4, Instrument(min_detectable_radius_nm=15.0))
    expect = np.asarray(library.member_mask[4]) & (np.asarray(library.radii_nm)[idx] >= 15.0)
    np.testing.assert_array_equal(found, expect)
    assert 0 < int(np.sum(found)) < int(np.sum(library.member_mask[4]))  # the cut bites
    _, none = overview_scan(library, 4, Instrument(min_detectable_radius_nm=1e4))
    assert not np.any(none)
    _, everything = overview_scan(library, 4, Instrument(min_detectable_radius_nm=0.0))
    np.testing.assert_array_equal(everything, library.member_mask[4])


def test_target_is_a_sum_of_gaussians():
    centres = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    f = target_function(jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), centres,
                        jnp.array([2.0, 1.0]), 0.1)  # fmt: skip
    far = math.exp(-0.5 * 1.5 / 0.01)  # |e₀ − (0, ½, ½)|² = 1.5
    near = math.exp(-0.5 * 0.5 / 0.01)
    np.testing.assert_allclose(f, [2.0 + far, 2.0 * math.exp(-0.5 * 2 / 0.01) + near], rtol=1e-5)


def test_region_change_time_uses_eq5_and_grows_beyond_reach():
    inst = Instrument()
    reach = 15.0
    d = jnp.array([0.0, 10.0, 15.0, 30.0, 60.0, 90.0])
    t = np.asarray(region_change_times(d, inst, reach))
    kinds = dict(zip(ACTIONS, t.T))
    np.testing.assert_allclose(kinds["edx"], 10.0)
    np.testing.assert_allclose(kinds["beam_shift"], 0.02)
    np.testing.assert_allclose(kinds["stage"], [0, 0, 0, 3.0, 6.0, 9.0], rtol=1e-6)
    np.testing.assert_allclose(kinds["retune"], [0, 0, 0, 5.0, 5.0, 5.0])
    total = t.sum(1)
    assert np.all(total[:3] == total[0])  # constant within beam-shift reach
    assert total[3] - total[2] > 5.0  # the jump of eq. 6 when the stage must move
    np.testing.assert_allclose(np.diff(total[3:]), 3.0, rtol=1e-5)  # then d/v, 10 µm/s
    np.testing.assert_allclose(measurement_times(inst)[ACTIONS.index("eels")], 1.0)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: LibraryConfig(area_um=(300.0, 300.0), fov_um=(400.0, 30.0)),
         r"fov_um must fit in the accessible area \(fov_um\[0\] <= area_um\[0\] = 300.0"),
        (lambda: LibraryConfig(density_per_um2=-0.02), r"density_per_um2 must be >= 0 µm⁻²"),
        (lambda: LibraryConfig(area_um=(0.0, 10.0)), "area_um must be a pair"),
        (lambda: LibraryConfig(n_components=1), "n_components must be an integer >= 2"),
        (lambda: Instrument(stage_speed_um_per_s=-10.0), r"stage_speed_um_per_s must be > 0"),
        (lambda: Instrument(retune_s=-5.0), r"retune_s must be >= 0 s"),
        (lambda: target_function(jnp.array([[0.5, 0.6, 0.1]]), jnp.array([[1.0, 0, 0]]),
                                 jnp.ones(1), 0.1), "compositions must lie on the simplex"),
        (lambda: edx_measure(jax.random.key(0), jnp.array([[0.5, 0.6, -0.1]]), jnp.ones(1)),
         "compositions must lie on the simplex"),
        (lambda: simplex_reestimate(jnp.ones((2, 3)), -jnp.ones((2, 3))), "sigmas must be >= 0"),
        (lambda: expected_particle_count(2.67, 0.5, -5.0, 1.0), "mean_radius_nm must be > 0 nm"),
        (lambda: expected_particle_count(2.67, 1.5, 50.0, 15.0), r"coverage must lie in \[0.0, 1.0\]"),
        (lambda: composition_dimensions(0.5), r"particle_count must lie in \[1.0, inf\]"),
    ],
)
def test_bad_input_raises_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
