"""Multislice calibration of the fast ADF model: the shipped table, its lookups, its use in
IncoherentImaging and agreement with a freshly computed multislice column."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.physics import (
    AnnularDetector,
    ColumnCalibration,
    IncoherentImaging,
    Multislice,
    Probe,
    ScanGrid,
    atomic_number,
    calibration_table,
    load_calibration,
    make_specimen,
)

REQUIRED = "C N O Si S Ti V Cr Mn Fe Ga Ge Se Sr Nb Mo Ba W Re Pt Au".split()
GEOMETRIES = {(60.0, 30.0, "HAADF"), (80.0, 30.0, "HAADF"), (200.0, 21.0, "HAADF"),
              (200.0, 21.0, "MAADF"), (300.0, 21.0, "HAADF"), (300.0, 21.0, "MAADF")}  # fmt: skip
ON_COLUMN = ScanGrid((1, 1), 0.1, origin=(4.0, 4.0))


def test_shipped_table_covers_the_declared_grid():
    table = calibration_table()
    assert table["counts"] == list(range(1, 33))
    assert {"command", "date", "stemjax_version", "settings"} <= set(table["metadata"])
    found = {(g["energy_kev"], g["semiangle_mrad"], g["detector"]) for g in table["geometries"]}
    assert found == GEOMETRIES
    for entry in table["geometries"]:
        assert set(REQUIRED) <= set(entry["factors"]) == set(entry["held_out_error"])
        factors = np.array(list(entry["factors"].values()))
        assert factors.shape[1] == 32 and np.all(np.isfinite(factors) & (factors > 0))
        detector = AnnularDetector.preset(entry["detector"], entry["semiangle_mrad"])
        loaded = load_calibration(entry["energy_kev"], entry["semiangle_mrad"], detector)
        nodes = jnp.asarray(table["counts"], float)
        for symbol, row in entry["factors"].items():
            z = jnp.full(nodes.shape, atomic_number(symbol))
            np.testing.assert_allclose(loaded.factor(z, nodes), row, rtol=1e-6)


def test_factors_interpolate_linearly_and_hold_beyond_the_table():
    table = ColumnCalibration([1.0, 2.0, 4.0], {"Mo": [1.0, 2.0, 3.0]}, 200.0, 21.0, 68.0, 200.0)
    f = table.factor(jnp.array([42, 42, 42, 42, 42]), jnp.array([0.5, 1.5, 3.0, 4.0, 9.0]))
    np.testing.assert_allclose(f, [1.0, 1.5, 2.5, 3.0, 3.0], rtol=1e-6)
    assert np.isnan(float(table.factor(jnp.array([29]), jnp.array([1.0]))[0]))  # Cu: not covered


def test_unit_factors_give_the_thin_limit_of_the_uncalibrated_model():
    # f = 1: s = N σ(Z; 68, 200) ρ_B, the first-order term of the Beer–Lambert model
    probe, detector = Probe(200.0, 21.0), AnnularDetector(68.0, 200.0)
    ones = ColumnCalibration(np.arange(1.0, 33.0), {"Sr": np.ones(32)}, 200.0, 21.0, 68.0, 200.0)
    site = make_specimen([[4.0, 4.0]], [38], [8.0, 8.0, 4.0], counts=3.0, debye_waller=0.5)
    grid = ScanGrid((6, 6), 0.2, origin=(3.5, 3.5))
    plain = IncoherentImaging(probe, detector)
    linear = IncoherentImaging(probe, detector, calibration=ones).render(site, grid)
    tau = plain.scattering_depth(site, grid)
    expected = tau * 21.0**2 * (1 / 68.0**2 - 1 / 200.0**2)
    np.testing.assert_allclose(linear, expected, rtol=1e-5, atol=1e-9)
    assert float(jnp.max(plain.render(site, grid))) < float(jnp.max(linear))  # saturation


def test_calibrated_model_reproduces_a_fresh_multislice_column():
    # the calibration's own setting (8 Å cell, 0.04 Å pixels, a/√2 = 3.84 Å spacing, B = 0.46,
    # one atom per two slices) with phonon configurations it never saw
    spacing = 3.84
    column = make_specimen([[4.0, 4.0, spacing / 4]], [14], [8.0, 8.0, 2 * spacing], counts=2.0,
                           debye_waller=0.46)  # fmt: skip
    probe, detector = Probe(200.0, 21.0), AnnularDetector.preset("HAADF")
    multislice = Multislice(probe, column, 0.04, spacing / 2)
    fresh = float(multislice.scan(column, [[4.0, 4.0]], [detector], key=jax.random.key(11),
                                  phonons=24)[0, 0])  # fmt: skip
    calibrated = IncoherentImaging(probe, detector, calibration="multislice")
    fast = float(calibrated.render(column, ON_COLUMN)[0, 0])
    (entry,) = [g for g in calibration_table()["geometries"]
                if g["energy_kev"] == 200.0 and g["detector"] == "HAADF"]  # fmt: skip
    stated = entry["held_out_error"]["Si"]
    assert abs(fast / fresh - 1) <= stated
    uncalibrated = float(IncoherentImaging(probe, detector).render(column, ON_COLUMN)[0, 0])
    assert abs(uncalibrated / fresh - 1) > 2 * stated  # the calibration is what makes it agree


def test_calibrated_render_is_differentiable_in_positions_and_counts(x64):
    model = IncoherentImaging(Probe(80.0, 30.0), calibration="multislice")
    grid = ScanGrid((4, 4), 0.3, origin=(3.5, 3.5))
    padded = make_specimen([[4.0, 4.0], [0.0, 0.0]], [42, 0], [8.0, 8.0, 2.0],
                           present=[True, False])  # fmt: skip

    def total(x, counts):
        specimen = eqx.tree_at(
            lambda s: (s.positions, s.counts), padded,
            (padded.positions.at[0, 0].set(x), padded.counts.at[0].set(counts)),
        )  # fmt: skip
        return jnp.sum(model.render(specimen, grid))

    gx, gc = jax.grad(total, argnums=(0, 1))(4.1, 2.5)
    h = 1e-4
    fx = (total(4.1 + h, 2.5) - total(4.1 - h, 2.5)) / (2 * h)
    fc = (total(4.1, 2.5 + h) - total(4.1, 2.5 - h)) / (2 * h)
    np.testing.assert_allclose([float(gx), float(gc)], [float(fx), float(fc)], rtol=1e-4,
                               atol=1e-9 * abs(float(total(4.1, 2.5))))  # fmt: skip
    assert float(gc) > 0


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: IncoherentImaging(Probe(120.0, 21.0), calibration="multislice"),
         r"no multislice calibration for energy_kev=120, semiangle_mrad=21 .* available"),
        (lambda: IncoherentImaging(Probe(200.0, 25.0), calibration="multislice"),
         r"no multislice calibration for energy_kev=200, semiangle_mrad=25"),
        (lambda: IncoherentImaging(Probe(200.0, 21.0), AnnularDetector(50.0, 150.0),
                                   calibration="multislice"),
         r"and a 50-150 mrad detector"),
        (lambda: IncoherentImaging(Probe(200.0, 21.0), calibration="abtem"),
         r"calibration must be one of \['multislice'\] or a ColumnCalibration"),
        (lambda: IncoherentImaging(Probe(200.0, 21.0), exponent=2.0, calibration="multislice"),
         r"exponent must be 1.7 with a calibration"),
        (lambda: IncoherentImaging(Probe(80.0, 30.0), calibration=load_calibration(
            200.0, 21.0, AnnularDetector(68.0, 200.0))),
         r"calibration is for 200 keV, 21 mrad probe, 68-200 mrad detector, not for this probe"),
        (lambda: ColumnCalibration([1.0, 2.0], {"Xx": [1.0, 1.0]}, 200.0, 21.0, 68.0, 200.0),
         r"element must be an element symbol"),
        (lambda: ColumnCalibration([1.0, 2.0], {"Mo": [1.0, -1.0]}, 200.0, 21.0, 68.0, 200.0),
         r"factors\['Mo'\] must hold 2 finite values > 0"),
    ],
)
def test_bad_lookups_are_rejected(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_elements_outside_the_table_are_rejected():
    model = IncoherentImaging(Probe(200.0, 21.0), calibration="multislice")
    copper = make_specimen([[4.0, 4.0], [5.0, 4.0]], [29, 79], [8.0, 8.0, 2.0])
    with pytest.raises(ValueError, match=r"does not cover Cu; covered elements: C, N, O"):
        model.render(copper, ON_COLUMN)
    # traced atomic numbers are checked inside the compiled code
    with pytest.raises(Exception, match="not in the calibration table"):
        jax.jit(lambda s: model.render(s, ON_COLUMN))(copper).block_until_ready()
