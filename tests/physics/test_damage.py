"""Knock-on damage: maximum transfer (P13), McKinley–Feshbach cross section, atom loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from stemjax.physics.damage import (
    apply_damage,
    displacement_cross_section,
    displacement_probability,
    max_transferred_energy,
)
from stemjax.physics.specimen import PRISTINE, SUBSTITUTION, VACANCY, make_specimen

BARN_A2 = 1e-8
CARBON_U, SULFUR_U = 12.011, 32.06

# Independent constants (CODATA 2018) for the hand-computed references.
R_E_A = 2.817_940_326_2e-5  # classical electron radius, Å
ALPHA = 1 / 137.035_999_084
MC2_EV = 510_998.95
U_EV = 931_494_102.42


def _reference_sigma(energy_kev, z, threshold_ev, mass_u):
    """Closed form written out from scratch in float64 with π r_e² as prefactor, Å²."""
    e = energy_kev * 1e3
    gamma = 1 + e / MC2_EV
    beta2 = 1 - 1 / gamma**2
    beta = np.sqrt(beta2)
    t_m = 2 * e * (e + 2 * MC2_EV) / (mass_u * U_EV)
    r = t_m / threshold_ev
    if r <= 1:
        return 0.0
    bracket = r - 1 - beta2 * np.log(r) + np.pi * z * ALPHA * beta * (
        2 * np.sqrt(r) - np.log(r) - 2
    )
    return np.pi * R_E_A**2 * z**2 * (1 - beta2) / beta2**2 * bracket


def _integrated_sigma(energy_kev, z, threshold_ev, mass_u):
    """∫ dσ/dT dT from T_d to T_m: Rutherford × McKinley–Feshbach ratio, integrated by quad."""
    e = energy_kev * 1e3
    gamma = 1 + e / MC2_EV
    beta2 = 1 - 1 / gamma**2
    beta = np.sqrt(beta2)
    t_m = 2 * e * (e + 2 * MC2_EV) / (mass_u * U_EV)

    def dsigma_dt(t):
        s = np.sqrt(t / t_m)  # sin(θ/2)
        rutherford = np.pi * (z * R_E_A) ** 2 * (1 - beta2) / beta2**2 * t_m / t**2
        return rutherford * (1 - beta2 * s**2 + np.pi * z * ALPHA * beta * s * (1 - s))

    value, _ = integrate.quad(dsigma_dt, threshold_ev, t_m, epsabs=0, epsrel=1e-12)
    return value


# --- maximum transferred energy ---------------------------------------------------------


@pytest.mark.parametrize("x64", [False, True])
def test_p13_carbon_max_transfer(x64):
    with jax.enable_x64(x64):
        e = max_transferred_energy(jnp.array([80.0, 200.0]), CARBON_U)
        assert e.dtype == (jnp.float64 if x64 else jnp.float32)
        np.testing.assert_allclose(e, [15.76, 43.69], atol=0.01)


def test_max_transfer_closed_form_and_sulfur_at_60_kev():
    e = 60e3
    expected = 2 * e * (e + 2 * MC2_EV) / (SULFUR_U * U_EV)
    got = float(max_transferred_energy(60.0, SULFUR_U))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got == pytest.approx(4.35, abs=0.01) and got < 6.9  # S in MoS₂ is safe at 60 keV


def test_max_transfer_errors():
    with pytest.raises(ValueError, match=r"energy_kev must be > 0 keV.*-80\.0"):
        max_transferred_energy(-80.0, CARBON_U)
    with pytest.raises(ValueError, match=r"mass_u must be > 0 u.*0\.0"):
        max_transferred_energy(80.0, 0.0)


# --- displacement cross section ---------------------------------------------------------


def test_cross_section_matches_hand_computed_closed_form():
    with jax.enable_x64(True):
        for energy, z, mass, td in [(200.0, 6, CARBON_U, 17.0), (300.0, 16, SULFUR_U, 6.9),
                                    (120.0, 6, CARBON_U, 21.14), (1000.0, 79, 196.97, 15.0)]:
            got = float(displacement_cross_section(energy, z, td))
            np.testing.assert_allclose(got, _reference_sigma(energy, z, td, mass), rtol=1e-9)
            np.testing.assert_allclose(got, _integrated_sigma(energy, z, td, mass), rtol=1e-8)
        # Carbon, T_d = 17 eV, 200 keV: 22.6 barn (by hand: 8.98 b × 2.209 × 1.139).
        got = float(displacement_cross_section(200.0, 6, 17.0)) / BARN_A2
        assert got == pytest.approx(22.6, rel=5e-3)


def test_cross_section_zero_below_threshold():
    # Carbon in graphene (T_d = 21.14 eV) at 80 keV: E_max = 15.76 eV < T_d.
    assert float(displacement_cross_section(80.0, 6, 21.14)) == 0.0
    # S at 60 keV with T_d = 6.9 eV: E_max = 4.35 eV < T_d.
    assert float(displacement_cross_section(60.0, 16, 6.9)) == 0.0
    # Exactly at threshold it is 0 too.
    with jax.enable_x64(True):
        t_m = float(max_transferred_energy(200.0, CARBON_U))
        assert float(displacement_cross_section(200.0, 6, t_m)) == 0.0


@pytest.mark.parametrize(("z", "threshold", "onset"), [(6, 21.14, 107.0), (16, 6.9, 93.0)])
def test_cross_section_positive_and_increasing_above_threshold(z, threshold, onset):
    energies = jnp.linspace(onset, 400.0, 60)
    sigma = np.asarray(displacement_cross_section(energies, z, threshold))
    assert np.all(sigma > 0)
    assert np.all(np.diff(sigma) > 0)


@pytest.mark.parametrize("x64", [False, True])
def test_cross_section_continuous_at_threshold(x64):
    # σ = π r_e² Z² (1−β²)/β⁴ [(1−β²) d + O(d²)] with d = T_m/T_d − 1 → 0⁺.
    with jax.enable_x64(x64):
        energy, z = 200.0, 6
        gamma = 1 + energy * 1e3 / MC2_EV
        beta2 = 1 - 1 / gamma**2
        slope = np.pi * R_E_A**2 * z**2 * (1 - beta2) ** 2 / beta2**2
        t_m = float(max_transferred_energy(energy, CARBON_U))
        deltas = [1e-2, 1e-3, 1e-4] + ([1e-6, 1e-8] if x64 else [])
        for delta in deltas:
            d = 1 / (1 - delta) - 1
            sigma = float(displacement_cross_section(energy, z, t_m * (1 - delta)))
            tol = 2 * d + (1e-9 if x64 else 3e-7 / d)
            np.testing.assert_allclose(sigma / (slope * d), 1.0, atol=tol)


def test_cross_section_float32_matches_float64():
    energies = np.array([90.0, 120.0, 200.0, 300.0])
    zs = np.array([16, 6, 42, 6])
    tds = np.array([6.9, 21.14, 6.0, 17.0])
    f32 = displacement_cross_section(jnp.asarray(energies), jnp.asarray(zs), jnp.asarray(tds))
    with jax.enable_x64(True):
        f64 = displacement_cross_section(energies, zs, tds)
    assert f32.dtype == jnp.float32 and f64.dtype == jnp.float64
    np.testing.assert_allclose(f32, f64, rtol=2e-5)


def test_cross_section_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        grad = jax.grad(displacement_cross_section, argnums=(0, 2))
        for energy, z, td in [(200.0, 6, 17.0), (150.0, 16, 6.9), (400.0, 42, 10.0)]:
            g_e, g_t = grad(energy, z, td)
            h = 1e-4
            fd_e = (displacement_cross_section(energy + h, z, td)
                    - displacement_cross_section(energy - h, z, td)) / (2 * h)
            fd_t = (displacement_cross_section(energy, z, td + h)
                    - displacement_cross_section(energy, z, td - h)) / (2 * h)
            np.testing.assert_allclose(g_e, fd_e, rtol=1e-7)
            np.testing.assert_allclose(g_t, fd_t, rtol=1e-7)
            assert float(g_e) > 0 and float(g_t) < 0


@pytest.mark.parametrize("x64", [False, True])
def test_cross_section_gradient_safe_below_and_at_threshold(x64):
    with jax.enable_x64(x64):
        grad = jax.jit(jax.grad(displacement_cross_section, argnums=(0, 2)))
        for energy, td in [(80.0, 21.14), (20.0, 21.14), (1.0, 1000.0)]:
            g = grad(energy, 6, td)
            assert all(np.isfinite(float(x)) and float(x) == 0.0 for x in g)
        t_m = max_transferred_energy(200.0, CARBON_U)
        g = grad(200.0, 6, t_m)
        assert all(np.isfinite(float(x)) for x in g)


def test_cross_section_vmap_equals_loop_and_broadcasts():
    energies = jnp.array([80.0, 150.0, 300.0])
    zs = jnp.array([6, 16, 42])
    batched = jax.vmap(displacement_cross_section, in_axes=(0, 0, None))(energies, zs, 7.0)
    looped = [displacement_cross_section(e, z, 7.0) for e, z in zip(energies, zs)]
    np.testing.assert_allclose(batched, np.array(looped), rtol=1e-6)
    grid = displacement_cross_section(energies[:, None], zs[None, :], 7.0)
    assert grid.shape == (3, 3)
    np.testing.assert_allclose(jnp.diag(grid), batched, rtol=1e-6)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0.0, 6, 20.0), r"energy_kev must be > 0 keV and finite; got 0\.0"),
        ((200.0, 0, 20.0), r"atomic_number must lie in \[1, 92\]; got 0\.0"),
        ((200.0, 93, 20.0), r"atomic_number must lie in \[1, 92\]; got 93\.0"),
        ((200.0, 6, -1.0), r"threshold_ev must be > 0 eV and finite; got -1\.0"),
    ],
)
def test_cross_section_errors(args, message):
    with pytest.raises(ValueError, match=message):
        displacement_cross_section(*args)


# --- displacement probability -----------------------------------------------------------


@pytest.mark.parametrize("x64", [False, True])
def test_probability_closed_form_and_small_argument(x64):
    with jax.enable_x64(x64):
        dose = jnp.array([0.0, 1e6, 1e7, 1e8, 1e12])
        sigma = 2.26e-7
        p = displacement_probability(dose, sigma)
        np.testing.assert_allclose(p, 1 - np.exp(-sigma * np.array(dose, float)), rtol=1e-6)
        assert float(p[0]) == 0.0 and float(p[-1]) == 1.0
        # σD = 1e-10: 1 − exp(−σD) in float32 would round to 0; −expm1 keeps full precision.
        tiny = float(displacement_probability(1e-2, 1e-8))
        np.testing.assert_allclose(tiny, 1e-10 - 0.5e-20, rtol=1e-6)


def test_probability_errors():
    with pytest.raises(ValueError, match=r"site_dose must be >= 0 e⁻/Å² and finite; got -1\.0"):
        displacement_probability(-1.0, 1e-7)
    with pytest.raises(ValueError, match=r"cross_section must be >= 0 Å²"):
        displacement_probability(1.0, -1e-7)


# --- apply_damage -----------------------------------------------------------------------

N_SITES = 6000
SIGMA_C_200 = 22.599561e-8  # carbon, T_d = 17 eV, 200 keV, Å²


def _sheet(z=6, counts=1.0, threshold=17.0, occupancies=1.0, present=True, atom_types=PRISTINE):
    """N_SITES sites on a square lattice (all tests share this capacity: one compilation)."""
    side = int(np.ceil(np.sqrt(N_SITES)))
    idx = np.arange(N_SITES)
    xy = np.stack([idx % side, idx // side], axis=1) * 1.5 + 0.5
    return make_specimen(
        xy, z, (side * 1.5, side * 1.5, 3.0), counts=counts, occupancies=occupancies,
        displacement_threshold_ev=threshold, present=present, atom_types=atom_types,
    )


def _thirds(a, b, c):
    k = N_SITES // 3
    return np.concatenate([np.full(k, a), np.full(k, b), np.full(N_SITES - 2 * k, c)])


@pytest.fixture(scope="module")
def damaged():
    """Mixed columns (1, 5 and 2.5 atoms) of carbon at σD = 0.7, 200 keV, key 0."""
    specimen = _sheet(counts=_thirds(1.0, 5.0, 2.5))
    dose = jnp.full(N_SITES, 0.7 / SIGMA_C_200)
    new, displaced = apply_damage(jax.random.key(0), specimen, dose, 200.0)
    return specimen, dose, new, displaced


def _mean_ok(x, expected_mean, variance):
    x = np.asarray(x, float)
    assert abs(x.mean() - expected_mean) < 4.5 * np.sqrt(variance / x.size), (
        x.mean(), expected_mean)


def test_expected_loss_matches_one_minus_exp(damaged):
    specimen, dose, new, displaced = damaged
    p = 1 - np.exp(-0.7)
    np.testing.assert_allclose(
        displacement_probability(dose[0], displacement_cross_section(200.0, 6, 17.0)), p,
        rtol=1e-5)
    d = np.asarray(displaced)
    k = N_SITES // 3
    _mean_ok(d[:k], p, p * (1 - p))  # single atoms: Bernoulli(p)
    _mean_ok(d[k:2 * k], 5 * p, 5 * p * (1 - p))  # Binomial(5, p)
    _mean_ok(d[2 * k:], 2.5 * p, 2.25 * p * (1 - p))  # Binomial(2, p) + ½ Bernoulli(p)
    assert set(np.unique(d[:k])) <= {0.0, 1.0}
    assert set(np.unique(d[k:2 * k])) <= {0.0, 1.0, 2.0, 3.0, 4.0, 5.0}
    assert np.all(np.isin(d[2 * k:], [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]))


def test_counts_decrease_and_emptied_sites_become_vacancies(damaged):
    specimen, _, new, displaced = damaged
    np.testing.assert_allclose(new.counts, specimen.counts - displaced, atol=1e-6)
    empty = np.asarray(new.counts) == 0
    assert empty.sum() > 0.3 * N_SITES // 3  # many single atoms were knocked out
    np.testing.assert_array_equal(np.asarray(new.atom_types)[empty], VACANCY)
    np.testing.assert_array_equal(np.asarray(new.occupancies)[empty], 0.0)
    np.testing.assert_array_equal(np.asarray(new.atom_types)[~empty], PRISTINE)
    np.testing.assert_array_equal(np.asarray(new.occupancies)[~empty], 1.0)
    assert np.all(np.asarray(new.present))
    np.testing.assert_array_equal(new.positions, specimen.positions)
    np.testing.assert_array_equal(new.atomic_numbers, specimen.atomic_numbers)


def test_same_key_same_result_and_keys_differ(damaged):
    specimen, dose, new, displaced = damaged
    again_new, again = apply_damage(jax.random.key(0), specimen, dose, 200.0)
    np.testing.assert_array_equal(again, displaced)
    np.testing.assert_array_equal(again_new.counts, new.counts)
    _, other = apply_damage(jax.random.key(1), specimen, dose, 200.0)
    assert not np.array_equal(other, displaced)


def test_vmap_over_keys_equals_loop(damaged):
    specimen, dose, _, _ = damaged
    keys = jax.random.split(jax.random.key(2), 3)
    new, displaced = jax.vmap(apply_damage, in_axes=(0, None, None, None))(
        keys, specimen, dose, 200.0)
    assert displaced.shape == (3, N_SITES) and new.counts.shape == (3, N_SITES)
    for i, k in enumerate(keys):
        one_new, one = apply_damage(k, specimen, dose, 200.0)
        np.testing.assert_array_equal(displaced[i], one)
        np.testing.assert_array_equal(new.atom_types[i], one_new.atom_types)


def test_second_scan_destroys_more_and_doses_add(damaged):
    # Two scans of dose D act like one of 2D: survival exp(−σD)² = exp(−2σD) per atom.
    specimen, dose, first, lost_first = damaged
    second, lost_second = apply_damage(jax.random.key(7), first, dose, 200.0)
    total = np.asarray(lost_first + lost_second)
    k = N_SITES // 3
    p2 = 1 - np.exp(-1.4)
    _mean_ok(total[:k], p2, p2 * (1 - p2))
    _mean_ok(total[k:2 * k], 5 * p2, 5 * p2 * (1 - p2))
    assert np.all(total >= np.asarray(lost_first))
    assert total[:k].mean() > np.asarray(lost_first)[:k].mean() + 0.1
    np.testing.assert_allclose(second.counts, specimen.counts - total, atol=1e-5)
    # Once a site is empty, further dose removes nothing from it.
    emptied = np.asarray(first.counts) == 0
    np.testing.assert_array_equal(np.asarray(lost_second)[emptied], 0.0)


def test_zero_dose_or_below_threshold_destroys_nothing():
    specimen = _sheet(counts=_thirds(1.0, 5.0, 2.5))
    new, displaced = apply_damage(jax.random.key(3), specimen, jnp.zeros(N_SITES), 200.0)
    np.testing.assert_array_equal(displaced, 0.0)
    np.testing.assert_array_equal(new.counts, specimen.counts)
    # S (T_d = 6.9 eV) at 60 keV: E_max = 4.35 eV, so even an enormous dose does nothing.
    sulfur = _sheet(z=16, threshold=6.9)
    huge = jnp.full(N_SITES, 1e12)
    new, displaced = apply_damage(jax.random.key(3), sulfur, huge, 60.0)
    np.testing.assert_array_equal(displaced, 0.0)
    np.testing.assert_array_equal(new.atom_types, PRISTINE)
    # ...while at 200 keV the same dose empties every site.
    new, displaced = apply_damage(jax.random.key(3), sulfur, huge, 200.0)
    np.testing.assert_array_equal(displaced, 1.0)
    np.testing.assert_array_equal(new.atom_types, VACANCY)


def test_padding_and_vacant_sites_untouched():
    kind = _thirds(0, 1, 2)  # 0: padding slot, 1: vacant site, 2: substituted atom
    specimen = _sheet(
        z=np.where(kind == 0, 0, 6),
        present=kind != 0,
        occupancies=np.where(kind == 1, 0.0, 1.0),
        atom_types=np.where(kind == 1, VACANCY, np.where(kind == 2, SUBSTITUTION, PRISTINE)),
        counts=1.0,
    )
    new, displaced = apply_damage(jax.random.key(4), specimen, jnp.full(N_SITES, 1e12), 200.0)
    d = np.asarray(displaced)
    np.testing.assert_array_equal(d[kind != 2], 0.0)
    np.testing.assert_array_equal(d[kind == 2], 1.0)
    for field in ("counts", "occupancies", "atom_types", "present"):
        np.testing.assert_array_equal(
            np.asarray(getattr(new, field))[kind != 2],
            np.asarray(getattr(specimen, field))[kind != 2],
        )
    # The substituted atoms that were knocked out leave vacancies.
    np.testing.assert_array_equal(np.asarray(new.atom_types)[kind == 2], VACANCY)


def test_apply_damage_float64():
    with jax.enable_x64(True):
        specimen = _sheet(counts=_thirds(1.0, 5.0, 2.5))
        dose = jnp.full(N_SITES, 0.3 / SIGMA_C_200)
        new, displaced = apply_damage(jax.random.key(5), specimen, dose, 200.0)
        assert displaced.dtype == jnp.float64 and new.counts.dtype == jnp.float64
        p = 1 - np.exp(-0.3 * SIGMA_C_200 / float(displacement_cross_section(200.0, 6, 17.0)))
        k = N_SITES // 3
        _mean_ok(np.asarray(displaced)[:k], p, p * (1 - p))
        _mean_ok(np.asarray(displaced)[k:2 * k], 5 * p, 5 * p * (1 - p))


def test_apply_damage_errors():
    specimen = _sheet()
    with pytest.raises(ValueError, match=r"site_dose must be >= 0 e⁻/Å² and finite"):
        apply_damage(jax.random.key(0), specimen, jnp.full(N_SITES, -1.0), 200.0)
    with pytest.raises(ValueError, match=r"energy_kev must be > 0 keV and finite; got -5\.0"):
        apply_damage(jax.random.key(0), specimen, jnp.zeros(N_SITES), -5.0)
