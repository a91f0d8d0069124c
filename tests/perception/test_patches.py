"""Simulated MX2 patches: determinism, labels and contexts, physics of the centre site,
closed forms of the separation d′, the ambiguous pairs, and argument errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.perception import (
    CLASSES,
    DOPANTS,
    HOSTS,
    PATCH_SAMPLING_A,
    PATCH_SIZE,
    PatchDomain,
    ambiguous_cases,
    clean_patches,
    context_vector,
    sample_cases,
    sample_patches,
    separation,
)
from stemjax.perception.patches import imaging_model
from stemjax.physics import ScanGrid, mx2_monolayer

SMALL = PatchDomain(hosts=("MoS2", "WSe2"), dopants=("V", "Re"),
                    imaging=("60keV-HAADF", "200keV-MAADF"))  # fmt: skip


def test_same_key_same_batch_and_shapes():
    a = sample_patches(jax.random.key(3), SMALL, 8)
    b = sample_patches(jax.random.key(3), SMALL, 8)
    c = sample_patches(jax.random.key(4), SMALL, 8)
    assert a.images.shape == (16, PATCH_SIZE, PATCH_SIZE) and len(a) == 16
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.images, c.images)
    assert np.all(np.asarray(a.images) >= 0) and np.all(np.asarray(a.images) % 1 == 0)
    # grouped by imaging, contexts match the case indices
    np.testing.assert_array_equal(a.imaging, [0] * 8 + [3] * 8)
    np.testing.assert_allclose(a.context, context_vector(a.host, a.dopant, a.imaging, a.dose),
                               rtol=1e-6)  # fmt: skip
    assert set(np.asarray(a.host).tolist()) <= {HOSTS.index("MoS2"), HOSTS.index("WSe2")}


def test_context_vector_values():
    c = np.asarray(context_vector(HOSTS.index("WSe2"), DOPANTS.index("Re"), 3, 1e5))
    np.testing.assert_allclose(c, [74, 34, 75, 200, 21, 42, 68, 5.0], rtol=1e-6)


def test_dopants_too_close_to_the_host_metal_are_never_drawn():
    batch = sample_patches(jax.random.key(0), SMALL, 64)
    host, dopant = np.asarray(batch.host), np.asarray(batch.dopant)
    # Re (Z 75) is not a dopant of WSe2 (W, Z 74): every WSe2 patch uses V
    assert np.all(dopant[host == HOSTS.index("WSe2")] == DOPANTS.index("V"))
    assert set(dopant[host == HOSTS.index("MoS2")].tolist()) == {DOPANTS.index("V"),
                                                               DOPANTS.index("Re")}
    with pytest.raises(ValueError, match="dopants must include one element"):
        PatchDomain(hosts=("WS2",), dopants=("Re",))


def test_clean_patch_equals_the_library_image_of_the_monolayer():
    """The vmapped patch renderer equals imaging a pristine MoS2 monolayer directly."""
    domain = PatchDomain(hosts=("MoS2",), dopants=("V",), imaging=("60keV-HAADF",),
                         source_size_range_A=(0.3, 0.3))  # fmt: skip
    cases, patches = clean_patches(domain)
    metal = cases.index(("MoS2", "V", "60keV-HAADF", 0))
    specimen = mx2_monolayer(jax.random.key(0), "MoS2", cells=(6, 4))
    xy = np.asarray(specimen.atom_xy)
    is_metal = np.asarray(specimen.atomic_numbers) == 42
    middle = 0.5 * np.asarray(specimen.cell[:2])
    centre = xy[np.argmin(np.where(is_metal, np.hypot(*(xy - middle).T), np.inf))]
    half = 0.5 * (PATCH_SIZE - 1) * PATCH_SAMPLING_A
    grid = ScanGrid((PATCH_SIZE, PATCH_SIZE), PATCH_SAMPLING_A, origin=centre - half)
    model = imaging_model("60keV-HAADF")
    model = eqx.tree_at(lambda m: m.probe.source_size, model, jnp.asarray(0.3))
    direct = np.asarray(model.render(specimen, grid)) * PATCH_SAMPLING_A**2  # e⁻ at 1 e⁻/Å²
    np.testing.assert_allclose(patches[metal], direct, rtol=2e-4, atol=1e-7 * direct.max())


def test_centre_site_physics():
    """Brightness of the centre pixel follows the column's scattering: X2 > X1 > X0 ≈ 0 in
    both hosts, metal above X2 in MoS2, below X2 in MoSe2 (2·34^1.7 > 42^1.7), V below Mo."""
    domain = PatchDomain(hosts=("MoS2", "MoSe2"), dopants=("V",), imaging=("200keV-HAADF",))
    cases, patches = clean_patches(domain)
    centre = {c: patches[i][PATCH_SIZE // 2, PATCH_SIZE // 2] for i, c in enumerate(cases)}
    for host in ("MoS2", "MoSe2"):
        v = {CLASSES[c[3]]: centre[c] for c in centre if c[0] == host}
        assert v["chalcogen"] > v["single_vacancy"] > v["double_vacancy"]
        assert v["double_vacancy"] < 0.2 * v["single_vacancy"]
        assert v["dopant"] < 0.6 * v["metal"]
    mos2 = {CLASSES[c[3]]: centre[c] for c in centre if c[0] == "MoS2"}
    mose2 = {CLASSES[c[3]]: centre[c] for c in centre if c[0] == "MoSe2"}
    assert mos2["metal"] > mos2["chalcogen"] and mose2["metal"] < mose2["chalcogen"]


def test_counts_scale_with_dose():
    case = [("MoS2", "V", "60keV-HAADF", 0)]
    low = sample_cases(jax.random.key(1), SMALL, case, 200, dose=1e4)
    high = sample_cases(jax.random.key(2), SMALL, case, 200, dose=1e5)
    ratio = float(high.images.sum()) / float(low.images.sum())
    assert ratio == pytest.approx(10.0, rel=0.03)
    np.testing.assert_allclose(low.dose, 1e4)


def test_separation_closed_forms():
    rng = np.random.default_rng(0)
    a = rng.uniform(1.0, 5.0, (PATCH_SIZE, PATCH_SIZE))
    assert separation(a, a, 1e4) == pytest.approx(0.0, abs=1e-6)
    # invariant to brightness and offset, as a standardising classifier is
    assert separation(a, 3.0 * a + 0.5, 1e4) == pytest.approx(0.0, abs=1e-5)
    b = a.copy()
    b[12, 12] += 0.1
    d1, d4 = separation(a, b, 1e4), separation(a, b, 4e4)
    assert d4 == pytest.approx(2 * d1, rel=1e-9)  # d′ ∝ √dose
    # one pixel changed by δ: d′² = D δ² / λ (1 − its share of the fitted offset/scale)
    assert d1 == pytest.approx(np.sqrt(1e4 * 0.01 / a[12, 12]), rel=0.05)


def test_ambiguous_pairs_are_the_known_sublattice_swap():
    domain = PatchDomain(hosts=("MoSe2", "WSe2"), dopants=("V",),
                         imaging=("200keV-HAADF", "200keV-MAADF"))  # fmt: skip
    pairs = ambiguous_cases(domain, 2e4)
    assert pairs and all(p.a[3] != p.b[3] and p.separation <= 1.0 for p in pairs)
    assert [p.separation for p in pairs] == sorted(p.separation for p in pairs)
    kinds = {(p.a[0], p.a[2], CLASSES[p.a[3]], p.b[0], p.b[2], CLASSES[p.b[3]]) for p in pairs}
    # MoSe2's metal column looks like WSe2's Se2 column (each dimmer than its neighbours)
    assert ("MoSe2", "200keV-HAADF", "metal", "WSe2", "200keV-MAADF", "chalcogen") in kinds
    # d′ ∝ √dose: at 100× the dose only pairs with d′ ≤ 0.1 at 2·10⁴ remain
    at_high = ambiguous_cases(domain, 2e6)
    assert len(at_high) == sum(p.separation <= 0.1 for p in pairs) < len(pairs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"hosts": ("MoS3",)}, "hosts must be distinct names"),
        ({"imaging": ("300keV-HAADF",)}, "imaging must be distinct names"),
        ({"dose_range": (1e5, 1e4)}, "low <= high"),
        ({"dose_range": (-1.0, 1e4)}, "dose_range"),
        ({"neighbour_defect_fraction": 0.7}, "neighbour_defect_fraction"),
        ({"source_size_range_A": (0.5, 0.1)}, "source_size_range_A"),
    ],
)
def test_domain_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PatchDomain(**kwargs)


def test_sampling_errors():
    with pytest.raises(ValueError, match="n_per_case"):
        sample_cases(jax.random.key(0), SMALL, [("MoS2", "V", "60keV-HAADF", 0)], 0)
    with pytest.raises(ValueError, match="cases must be"):
        sample_cases(jax.random.key(0), SMALL, [("MoS2", "V", "80keV-HAADF", 0)], 1)
    with pytest.raises(ValueError, match="dose"):
        ambiguous_cases(SMALL, -1.0)
