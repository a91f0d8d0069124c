"""The Specimen pytree, its ground truth, elements and scan grids."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.physics import ScanGrid, atomic_number, concatenate, make_specimen
from stemjax.physics.elements import ATOMIC_MASSES_U, SYMBOLS


def test_element_table():
    assert atomic_number("Mo") == 42 and atomic_number("U") == 92 and atomic_number(16) == 16
    assert SYMBOLS[41] == "Mo"
    assert ATOMIC_MASSES_U[6] == pytest.approx(12.011)
    assert ATOMIC_MASSES_U[42] == pytest.approx(95.95)
    assert np.all(np.diff(ATOMIC_MASSES_U[1:19]) > 0)  # H…Ar increase monotonically


@pytest.mark.parametrize(
    "element, message",
    [
        ("Xx", r"element must be an element symbol H…U .* got 'Xx'"),
        ("mo", r"got 'mo'"),
        (0, r"element must be an atomic number in \[1, 92\]; got 0"),
        (93, r"got 93"),
        (True, r"got True"),
    ],
)
def test_unknown_elements_are_rejected(element, message):
    with pytest.raises(ValueError, match=message):
        atomic_number(element)


def test_make_specimen_broadcasts_and_reports_ground_truth():
    s = make_specimen([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [42, 16, 16], [8.0, 8.0, 3.0],
                      atom_types=[0, 1, 2], occupancies=[1.0, 0.0, 1.0])  # fmt: skip
    assert s.capacity == 3
    np.testing.assert_array_equal(s.positions[:, 2], 0.0)
    np.testing.assert_array_equal(s.defect_mask, [False, True, True])
    np.testing.assert_array_equal(s.atom_xy, [[1, 2], [3, 4], [5, 6]])
    both = concatenate(s, make_specimen([[0.5, 0.5]], [23], [10.0, 4.0, 3.0]))
    assert both.capacity == 4
    np.testing.assert_array_equal(both.cell, [10.0, 8.0, 3.0])
    assert int(both.atomic_numbers[-1]) == 23


def test_phase_map_and_valid_region_rasterise_the_ground_truth():
    s = make_specimen([[1.0, 1.0]], [6], [4.0, 3.0, 1.0], domains=[[1.0, 1.0, 0.6], [0, 0, 0]])
    grid = ScanGrid((6, 8), 0.5, origin=(0.0, 0.0))  # x 0…3.5, y 0…2.5
    phase = np.asarray(s.phase_map(grid))
    xy = np.asarray(grid.positions())
    inside = np.hypot(xy[..., 0] - 1.0, xy[..., 1] - 1.0) < 0.6
    np.testing.assert_array_equal(phase, inside.astype(int))
    assert phase.sum() == 5  # the centre and its four neighbours 0.5 Å away
    beyond = ScanGrid((2, 2), 2.0, origin=(3.0, 1.0))  # x 3, 5; y 1, 3
    np.testing.assert_array_equal(s.valid_region(beyond), [[True, False], [True, False]])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"positions": [[0.0, np.nan]]}, r"positions must be finite .* got 1 non-finite"),
        ({"positions": [[np.inf, 0.0]]}, r"positions must be finite"),
        ({"occupancies": 1.5}, r"occupancies must lie in \[0.0, 1.0\]; got \[1.5\]"),
        ({"counts": -1.0}, r"counts must be >= 0"),
        ({"debye_waller": -0.1}, r"debye_waller must be >= 0 Å²"),
        ({"atomic_numbers": [0]}, r"atomic_numbers must lie in \[1, 92\]"),
        ({"cell": [5.0, 0.0, 1.0]}, r"cell must be > 0 Å"),
        ({"positions": [[[0.0]]]}, r"positions must have shape \(n, 2\) or \(n, 3\)"),
    ],
)
def test_bad_specimens_are_rejected(kwargs, message):
    args = {"positions": [[0.0, 0.0]], "atomic_numbers": [6], "cell": [5.0, 5.0, 1.0]}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        make_specimen(args.pop("positions"), args.pop("atomic_numbers"), args.pop("cell"), **args)


def test_padding_slots_may_hold_any_atomic_number():
    s = make_specimen([[0.0, 0.0], [1.0, 1.0]], [6, 0], [5.0, 5.0, 1.0], present=[True, False])
    assert s.capacity == 2


def test_specimens_stack_and_vmap():
    make = lambda z: make_specimen([[0.0, 0.0], [1.0, 1.0]], [z, 16], [5.0, 5.0, 1.0])  # noqa: E731
    batch = jax.tree.map(lambda *x: jnp.stack(x), make(42), make(74))
    assert batch.atomic_numbers.shape == (2, 2)
    total_z = jax.vmap(lambda s: jnp.sum(s.atomic_numbers))(batch)
    np.testing.assert_array_equal(total_z, [58, 90])


def test_scan_grid_positions_subgrid_and_errors():
    grid = ScanGrid((4, 6), 0.5, origin=(1.0, 2.0))
    xy = np.asarray(grid.positions())
    np.testing.assert_allclose(xy[2, 3], [1.0 + 1.5, 2.0 + 1.0])
    part = grid.subgrid(1, 2, (2, 3))
    np.testing.assert_allclose(np.asarray(part.positions()), xy[1:3, 2:5])
    path = grid.path()
    np.testing.assert_allclose(path.line_y, [2.0, 2.5, 3.0, 3.5])
    assert path.shape == (4, 6)
    with pytest.raises(ValueError, match=r"row \+ shape\[0\] must lie in \[0, 4\]"):
        grid.subgrid(3, 0, (2, 2))
    with pytest.raises(ValueError, match=r"step must be > 0 Å"):
        ScanGrid((4, 4), 0.0)
    with pytest.raises(ValueError, match=r"shape\[1\] must be an integer >= 1; got 0"):
        ScanGrid((4, 0), 0.1)
