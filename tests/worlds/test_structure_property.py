"""The World pytree, its validation, and the real-data loaders (PFM, reference runs, EELS)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stemjax.worlds import (
    EELS_FILE,
    PFM_FILE,
    World,
    candidate_centres,
    data_dir,
    eels_world,
    pfm_reference_runs,
    pfm_world,
)


def _has(name: str) -> bool:
    try:
        return (data_dir() / name).is_file()
    except FileNotFoundError:
        return False


needs_pfm = pytest.mark.skipif(not _has(PFM_FILE), reason="shared PFM data are missing")
needs_eels = pytest.mark.skipif(not _has(EELS_FILE), reason="shared EELS data are missing")


def _parts(n=6, s=2):
    rng = np.random.default_rng(0)
    return dict(
        inputs=rng.random((n, 4, 4)), targets=rng.random(n), positions=rng.random((n, 2)) * 9,
        costs=np.ones(n), seeds=np.arange(s), image=rng.random((10, 10)), name="toy",
    )


# ------------------------------------------------------------------------------- World


def test_world_holds_its_arrays_in_float_and_int32():
    world = World(**_parts())
    assert world.size == 6
    assert world.inputs.shape == (6, 4, 4) and world.inputs.dtype == jnp.float32
    assert world.seeds.dtype == jnp.int32 and world.name == "toy"
    np.testing.assert_allclose(world.targets, _parts()["targets"], rtol=1e-6)


def test_world_accepts_feature_vectors_and_keeps_float64_under_x64(x64):
    parts = _parts() | {"inputs": np.zeros((6, 3))}
    world = World(**parts)
    assert world.inputs.shape == (6, 3) and world.targets.dtype == jnp.float64


@pytest.mark.parametrize(
    "change, message",
    [
        ({"inputs": np.zeros((5, 4, 4))}, r"inputs must have shape \(N, \*d\) = \(6, \.\.\.\)"),
        ({"inputs": np.zeros(6)}, r"inputs must have shape \(N, \*d\)"),
        ({"positions": np.zeros((6, 3))}, r"positions must have shape \(N, 2\) = \(6, 2\)"),
        ({"costs": np.ones(5)}, r"costs must have shape \(N,\) = \(6,\); got \(5,\)"),
        ({"image": np.zeros(10)}, r"image must have shape \(H, W\)"),
        ({"seeds": np.zeros((2, 2), int)}, r"seeds must have shape \(s,\)"),
        ({"seeds": np.zeros(0, int)}, r"seeds must hold at least 1 index"),
        ({"seeds": np.array([0, 6])}, r"seeds must lie in \[0, 5\].*got 6"),
        ({"seeds": np.array([-1, 2])}, r"seeds must lie in \[0, 5\].*got -1"),
        ({"seeds": np.array([3, 1, 3])}, r"seeds must be distinct; got \[3\]"),
        ({"seeds": np.array([0.0, 1.0])}, r"seeds must be integer indices"),
        ({"costs": np.array([1, 1, 0, 1, 1, 1.0])}, r"costs must be > 0 s.*e\.g\. 0\.0"),
        ({"costs": -np.ones(6)}, r"costs must be > 0 s.*-1\.0"),
        ({"targets": np.array([0, 1, np.nan, 0, 0, 0])}, r"targets must be finite.*nan"),
        ({"inputs": np.full((6, 4, 4), np.inf)}, r"inputs must be finite"),
        ({"name": 3}, r"name must be a string; got 3"),
    ],
)
def test_world_rejects_bad_parts_naming_them(change, message):
    with pytest.raises(ValueError, match=message):
        World(**(_parts() | change))


def test_world_builds_under_jit_and_vmap_and_stacks():
    parts = _parts()
    name = parts.pop("name")

    @jax.jit
    def build(targets, seeds):
        return World(**(parts | {"targets": targets, "seeds": seeds, "name": name}))

    world = build(jnp.arange(6.0), jnp.array([4, 1]))
    np.testing.assert_array_equal(world.seeds, [4, 1])
    stacked = jax.vmap(build)(jnp.ones((3, 6)), jnp.array([[0, 1], [2, 3], [4, 5]]))
    assert stacked.targets.shape == (3, 6) and stacked.inputs.shape == (3, 6, 4, 4)
    assert stacked.size == 6 and stacked.name == "toy"
    # traced values are not inspected, but shapes still are
    with pytest.raises(ValueError, match="costs must have shape"):
        jax.jit(lambda t: World(**(parts | {"targets": t, "costs": jnp.ones(4), "name": "x"})))(
            jnp.zeros(6)
        )


def test_concrete_stack_of_worlds_validates_each_row():
    parts = {k: np.stack([v, v]) if k != "name" else v for k, v in _parts().items()}
    assert World(**parts).targets.shape == (2, 6)
    parts["seeds"] = np.array([[0, 1], [1, 1]])
    with pytest.raises(ValueError, match="seeds must be distinct"):
        World(**parts)


def test_candidate_centres_give_the_pfm_grid():
    centres = candidate_centres((50, 50), 16)
    assert centres.shape == (1225, 2)
    assert centres.min() == 8 and centres.max() == 42
    np.testing.assert_array_equal(centres[:2], [[8, 8], [8, 9]])
    assert candidate_centres((5, 7), 1).shape == (35, 2)
    with pytest.raises(ValueError, match=r"patch_size must lie in \[1, 5\].*got 6"):
        candidate_centres((5, 7), 6)


# ------------------------------------------------------------------------- data folder


def test_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("STEMJAX_DATA", str(tmp_path))
    assert data_dir() == tmp_path
    monkeypatch.setenv("STEMJAX_DATA", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="STEMJAX_DATA.*absent"):
        data_dir()


def test_loaders_name_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        pfm_world(tmp_path / "nothing.npz")


def _fake_pfm(path, seeds=(3, 0, 7)):
    """A tiny file with the PFM layout: 12 × 12 image, 4 × 4 patches, centres 2 … 10."""
    rng = np.random.default_rng(1)
    image = rng.random((12, 12))
    centres = candidate_centres((12, 12), 4)
    scalarizer = np.zeros((12, 12))
    scalarizer[2:11, 2:11] = rng.random((9, 9))
    patches = np.stack([image[r - 2 : r + 2, c - 2 : c + 2] for r, c in centres])
    arrays = dict(image=image, scalarizer_map=scalarizer, patches=patches,
                  patch_centers=centres, seed_indices=np.array(seeds))
    for prefix in ("ei", "ucb", "beacon"):
        arrays |= {f"{prefix}_acquired_order": np.arange(5), f"{prefix}_mae": np.ones(5),
                   f"{prefix}_nlpd": np.ones(5), f"{prefix}_mean_pred_mean": np.ones(5),
                   f"{prefix}_mean_pred_var": np.ones(5)}
        for step in (0, 299):
            arrays |= {f"{prefix}_step{step}_pred_mean": image,
                       f"{prefix}_step{step}_pred_var": image}
    np.savez(path, **arrays)
    return arrays


def test_pfm_loader_reads_a_file_in_the_published_layout(tmp_path):
    arrays = _fake_pfm(tmp_path / "pfm.npz")
    world = pfm_world(tmp_path / "pfm.npz")
    centres = arrays["patch_centers"]
    assert world.name == "pfm" and world.inputs.shape == (81, 4, 4)
    np.testing.assert_allclose(
        world.targets, arrays["scalarizer_map"][centres[:, 0], centres[:, 1]], rtol=1e-6
    )
    np.testing.assert_array_equal(world.seeds, [3, 0, 7])
    runs = pfm_reference_runs(tmp_path / "pfm.npz")
    assert sorted(runs) == ["beacon", "ei", "mu"]
    assert runs["mu"]["acquired_order"].shape == (5,)


def test_pfm_loader_reports_a_missing_array(tmp_path):
    arrays = _fake_pfm(tmp_path / "pfm.npz")
    del arrays["seed_indices"]
    np.savez(tmp_path / "broken.npz", **arrays)
    with pytest.raises(ValueError, match="no array 'seed_indices'"):
        pfm_world(tmp_path / "broken.npz")


# ---------------------------------------------------------------------------- real data


@needs_pfm
def test_pfm_world_is_the_published_benchmark():
    world = pfm_world()
    with np.load(data_dir() / PFM_FILE, allow_pickle=False) as npz:
        centres, scalarizer = npz["patch_centers"], npz["scalarizer_map"]
        seeds, patches, image = npz["seed_indices"], npz["patches"], npz["image"]
    assert world.name == "pfm" and world.size == 1225
    assert world.inputs.shape == (1225, 16, 16) and world.inputs.dtype == jnp.float32
    assert world.image.shape == (50, 50) and world.positions.shape == (1225, 2)
    np.testing.assert_allclose(world.targets, scalarizer[centres[:, 0], centres[:, 1]],
                               rtol=1e-6)
    np.testing.assert_array_equal(world.seeds, seeds)
    np.testing.assert_array_equal(world.positions, centres)
    np.testing.assert_allclose(world.inputs, patches, rtol=1e-6)
    np.testing.assert_allclose(world.costs, 1.0)
    assert float(world.targets.min()) == 0.0 and float(world.targets.max()) == 1.0
    assert 0.0 <= float(world.inputs.min()) and float(world.inputs.max()) <= 1.0
    # each stored patch is the image window around its centre
    r, c = centres[100]
    np.testing.assert_allclose(world.inputs[100], image[r - 8 : r + 8, c - 8 : c + 8],
                               rtol=1e-6)


@needs_pfm
def test_pfm_world_in_float64(x64):
    world = pfm_world(dtype=jnp.float64)
    assert world.targets.dtype == jnp.float64 and world.inputs.dtype == jnp.float64


@needs_pfm
def test_pfm_reference_runs_hold_the_three_published_policies():
    runs = pfm_reference_runs()
    assert sorted(runs) == ["beacon", "ei", "mu"]
    for run in runs.values():
        assert run["acquired_order"].shape == (300,)
        assert np.issubdtype(run["acquired_order"].dtype, np.integer)
        assert run["acquired_order"].min() >= 0 and run["acquired_order"].max() < 1225
        for field in ("mae", "nlpd", "mean_pred_mean", "mean_pred_var"):
            assert run[field].shape == (300,) and np.all(np.isfinite(run[field]))
        assert run["step299_pred_mean"].shape == (50, 50)
        assert 0.0 < run["mae"][-1] < 0.6
    # the policies differ (MU is read from the file's "ucb_" arrays)
    assert not np.array_equal(runs["mu"]["acquired_order"], runs["ei"]["acquired_order"])


@needs_eels
def test_eels_world_uses_normalised_coordinates_as_inputs():
    world = eels_world()
    assert world.name == "eels" and world.size == 47 * 60
    assert world.inputs.shape == (2820, 2) and world.image.shape == (62, 75)
    inputs = np.asarray(world.inputs)
    assert inputs.min() == 0.0 and inputs.max() == 1.0
    positions = np.asarray(world.positions).astype(int)
    assert positions[:, 0].min() == 8 and positions[:, 0].max() == 54
    assert positions[:, 1].min() == 8 and positions[:, 1].max() == 67
    # one scale for both axes: coordinates are (position − 8) / 59
    np.testing.assert_allclose(inputs, (positions - 8) / 59.0, rtol=1e-6)
    np.testing.assert_allclose(world.targets, world.image[positions[:, 0], positions[:, 1]])
    assert float(world.targets.min()) >= 0.0 and float(world.targets.max()) <= 1.0
    assert float(world.targets.max()) > 0.9  # the valid window holds the map's peak
    assert world.seeds.shape == (10,) and len(set(np.asarray(world.seeds).tolist())) == 10
    np.testing.assert_array_equal(eels_world(seed=0).seeds, world.seeds)
    assert not np.array_equal(eels_world(seed=1).seeds, world.seeds)
    assert eels_world(n_seeds=3).seeds.shape == (3,)


@needs_eels
def test_eels_world_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"n_seeds must lie in \[1, 2820\].*got 5000"):
        eels_world(n_seeds=5000)
    with pytest.raises(ValueError, match=r"border must lie in \[0, 30\].*got 31"):
        eels_world(border=31)
