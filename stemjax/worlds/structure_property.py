"""Structure–property worlds: the candidates a campaign may measure, and the real-data loaders.

A :class:`World` is one structure–property experiment reduced to N candidate measurement
locations. For each candidate it holds what the surrogate sees (an image patch or a feature
vector), the hidden ground-truth scalarizer that a measurement reveals, where the candidate
lies on the structural image, and what measuring it costs. Every campaign in that world starts
from the same seed measurements. Worlds are equinox pytrees: simulated ones built under
``jax.vmap`` stack along a leading axis, one world per campaign.

Loaders read the real data of ``shared/data/pfm_pto_beacon`` with NumPy (no pickle):

- :func:`pfm_world`: PbTiO3 band-excitation PFM, 16 × 16 image patches → polarisation-loop
  height (the BEACON-DKL paper's benchmark, 1225 candidates, its 10 seeds);
- :func:`pfm_reference_runs`: the published EI, MU (max-uncertainty) and BEACON runs on it;
- :func:`eels_world`: plasmonic nanoparticle EELS scalarizer (no structural image survives,
  so its inputs are the candidates' coordinates).
"""

from __future__ import annotations

import os
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from stemjax._validation import check_int_at_least, is_concrete

__all__ = [
    "PFM_FILE",
    "EELS_FILE",
    "World",
    "data_dir",
    "pfm_world",
    "pfm_reference_runs",
    "eels_world",
    "candidate_centres",
]

PFM_FILE = "pfm_pto_beacon/pfm_pto_beacon.npz"
"""The PFM benchmark, relative to :func:`data_dir`."""

EELS_FILE = "pfm_pto_beacon/eels_plasmonic_scalarizer.npz"
"""The plasmonic EELS scalarizer map, relative to :func:`data_dir`."""

_POLICIES = {"ei": "ei", "mu": "ucb", "beacon": "beacon"}  # our name: key prefix in the npz
_RUN_FIELDS = ("acquired_order", "mae", "nlpd", "mean_pred_mean", "mean_pred_var")
_RUN_MAPS = ("step0_pred_mean", "step0_pred_var", "step299_pred_mean", "step299_pred_var")


class World(eqx.Module):
    """N candidate measurement locations of one structure–property experiment.

    Attributes:
        inputs: (N, *d) what the surrogate sees: image patches (N, h, w) or feature vectors
            (N, d).
        targets: (N,) hidden ground-truth scalarizer at each candidate (revealed when
            measured), finite.
        positions: (N, 2) (row, col) of each candidate, in pixels of ``image``.
        costs: (N,) cost of measuring each candidate, s (> 0; 1.0 when unknown).
        seeds: (s,) int, distinct indices in [0, N − 1] of the seed measurements every
            campaign starts from (s ≥ 1).
        image: (H, W) the structural image, for plots.
        name: a short label (static).

    A stack of worlds (e.g. built under ``jax.vmap``) has the same leading axes on every
    array. Concrete inputs are validated when a world is built; traced ones (inside
    ``jit``/``vmap``) are checked for shapes only.
    """

    inputs: Float[Array, "N *d"]
    targets: Float[Array, " N"]
    positions: Float[Array, "N 2"]
    costs: Float[Array, " N"]
    seeds: Int[Array, " s"]
    image: Float[Array, "H W"]
    name: str = eqx.field(static=True)

    def __init__(
        self,
        inputs: ArrayLike,
        targets: ArrayLike,
        positions: ArrayLike,
        costs: ArrayLike,
        seeds: ArrayLike,
        image: ArrayLike,
        name: str,
    ):
        if not isinstance(name, str):
            raise ValueError(f"name must be a string; got {name!r}")
        concrete = is_concrete((inputs, targets, positions, costs, seeds, image))
        xp = np if concrete else jnp  # NumPy: no compilation for concrete data
        arrays = [xp.asarray(a) for a in (inputs, targets, positions, costs, seeds, image)]
        inputs, targets, positions, costs, seeds, image = arrays
        _check_shapes(inputs, targets, positions, costs, seeds, image)
        if seeds.dtype.kind not in "iu":
            raise ValueError(f"seeds must be integer indices; got dtype {seeds.dtype}")
        if concrete:
            _check_values(inputs, targets, positions, costs, seeds, image)
        floats = [a.dtype for a in arrays if a.dtype.kind == "f"]
        dtype = jax.dtypes.canonicalize_dtype(
            np.result_type(*floats) if floats else jnp.result_type(float)
        )
        self.inputs = jnp.asarray(inputs, dtype)
        self.targets = jnp.asarray(targets, dtype)
        self.positions = jnp.asarray(positions, dtype)
        self.costs = jnp.asarray(costs, dtype)
        self.seeds = jnp.asarray(seeds, jnp.int32)
        self.image = jnp.asarray(image, dtype)
        self.name = name

    @property
    def size(self) -> int:
        """Number of candidates N."""
        return self.targets.shape[-1]


def _check_shapes(inputs, targets, positions, costs, seeds, image) -> None:
    if targets.ndim < 1:
        raise ValueError(f"targets must have shape (N,); got a scalar, shape {targets.shape}")
    n = targets.shape[-1]
    batch = targets.shape[:-1]
    b = len(batch)
    if n < 1:
        raise ValueError(f"targets must hold at least 1 candidate (N >= 1); got shape "
                         f"{targets.shape}")
    if inputs.ndim < targets.ndim + 1 or inputs.shape[: targets.ndim] != targets.shape:
        raise ValueError(
            f"inputs must have shape (N, *d) = ({n}, ...), one row per target; got "
            f"{inputs.shape} with targets {targets.shape}"
        )
    if positions.shape != (*targets.shape, 2):
        raise ValueError(f"positions must have shape (N, 2) = ({n}, 2); got {positions.shape}")
    if costs.shape != targets.shape:
        raise ValueError(f"costs must have shape (N,) = ({n},); got {costs.shape}")
    if seeds.ndim != b + 1 or seeds.shape[:b] != batch:
        raise ValueError(f"seeds must have shape (s,), one index per seed; got {seeds.shape}")
    if seeds.shape[-1] < 1:
        raise ValueError(f"seeds must hold at least 1 index (s >= 1); got shape {seeds.shape}")
    if image.ndim != b + 2 or image.shape[:b] != batch:
        raise ValueError(f"image must have shape (H, W); got {image.shape}")


def _check_values(inputs, targets, positions, costs, seeds, image) -> None:
    n = targets.shape[-1]
    for label, value in (("targets", targets), ("inputs", inputs), ("positions", positions),
                         ("image", image)):
        v = np.asarray(value, float)
        if not np.all(np.isfinite(v)):
            bad = v[~np.isfinite(v)]
            raise ValueError(f"{label} must be finite (no NaN or infinity); got {bad.size} "
                             f"non-finite value(s), e.g. {float(bad.flat[0])!r}")
    c = np.asarray(costs, float)
    if not (np.all(np.isfinite(c)) and np.all(c > 0)):
        bad = c[~(np.isfinite(c) & (c > 0))]
        raise ValueError(f"costs must be > 0 s and finite; got {bad.size} bad value(s), "
                         f"e.g. {float(bad.flat[0])!r}")
    s = np.asarray(seeds)
    if s.min() < 0 or s.max() > n - 1:
        bad = s[(s < 0) | (s > n - 1)]
        raise ValueError(f"seeds must lie in [0, {n - 1}] (indices of the N = {n} candidates);"
                         f" got {int(bad.flat[0])!r}")
    flat = s.reshape(-1, s.shape[-1])
    for row in flat:
        values, counts = np.unique(row, return_counts=True)
        if np.any(counts > 1):
            raise ValueError(f"seeds must be distinct; got {values[counts > 1].tolist()} more "
                             "than once")


# --------------------------------------------------------------------------------------------
# where the data live


def data_dir() -> Path:
    """The shared data folder.

    ``$STEMJAX_DATA`` when set; otherwise the first existing of ``<repo>/shared/data`` and
    ``<repo>/../shared/data``, with ``<repo>`` the folder that holds the ``stemjax`` package.

    Raises:
        FileNotFoundError: naming the places looked at, when none exists.
    """
    env = os.environ.get("STEMJAX_DATA")
    if env:
        path = Path(env).expanduser()
        if path.is_dir():
            return path
        raise FileNotFoundError(f"STEMJAX_DATA is set to {env!r}, which is not a folder")
    repo = Path(__file__).resolve().parents[2]
    places = [repo / "shared" / "data", repo.parent / "shared" / "data"]
    for place in places:
        if place.is_dir():
            return place
    raise FileNotFoundError(
        "the shared data folder was not found; looked at "
        + " and ".join(str(p) for p in places)
        + "; set the environment variable STEMJAX_DATA to the folder that holds "
        "pfm_pto_beacon/"
    )


def _open(path, default: str) -> dict[str, np.ndarray]:
    path = data_dir() / default if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _need(data: dict, key: str, path) -> np.ndarray:
    if key not in data:
        raise ValueError(f"{path or 'the data file'} has no array {key!r}; it holds "
                         f"{sorted(data)}")
    return data[key]


def candidate_centres(shape: tuple[int, int], patch_size: int) -> np.ndarray:
    """(N, 2) int (row, col) centres of every ``patch_size`` window that fits in ``shape``.

    The window of centre (r, c) is ``image[r − p//2 : r − p//2 + p, c − p//2 : …]``;
    centres run row-major over rows p//2 … H − p + p//2 (for p = 16 on 50 × 50: 8 … 42, the
    PFM benchmark's 1225 patches).
    """
    h, w = (check_int_at_least(f"shape[{i}]", v, 1) for i, v in enumerate(shape))
    p = check_int_at_least("patch_size", patch_size, 1)
    if p > min(h, w):
        raise ValueError(f"patch_size must lie in [1, {min(h, w)}] (the image's smaller side); "
                         f"got {p}")
    rows = np.arange(p // 2, h - p + p // 2 + 1)
    cols = np.arange(p // 2, w - p + p // 2 + 1)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    return np.stack([rr.ravel(), cc.ravel()], axis=1)


# --------------------------------------------------------------------------------------------
# loaders


def pfm_world(path=None, dtype=jnp.float32) -> World:
    """The PbTiO3 PFM benchmark of the BEACON-DKL paper as a :class:`World` named "pfm".

    Inputs are the stored 16 × 16 patches of the band-excitation amplitude image (globally
    min-max normalised to [0, 1]); targets the loop-height scalarizer (normalised to [0, 1])
    at each patch centre; positions the patch centres (rows/cols 8 … 42 of the 50 × 50 image);
    costs 1 s each; seeds the paper's 10 seed indices; image the amplitude image.

    Args:
        path: the ``pfm_pto_beacon.npz`` file; default ``data_dir() / PFM_FILE``.
        dtype: float dtype of the arrays.

    Returns:
        World with N = 1225, inputs (1225, 16, 16), image (50, 50), seeds (10,).
    """
    data = _open(path, PFM_FILE)
    patches = _need(data, "patches", path)
    centres = _need(data, "patch_centers", path).astype(np.int64)
    scalarizer = _need(data, "scalarizer_map", path)
    targets = scalarizer[centres[:, 0], centres[:, 1]]
    return World(
        inputs=np.asarray(patches, dtype),
        targets=np.asarray(targets, dtype),
        positions=np.asarray(centres, dtype),
        costs=np.ones(len(targets), dtype),
        seeds=_need(data, "seed_indices", path).astype(np.int32),
        image=np.asarray(_need(data, "image", path), dtype),
        name="pfm",
    )


def pfm_reference_runs(path=None) -> dict[str, dict[str, np.ndarray]]:
    """The published DKL runs on the PFM benchmark (PyTorch/GPyTorch, from the paper's notebooks).

    Returns:
        ``{"ei": ..., "mu": ..., "beacon": ...}`` (MU = max-uncertainty, a high-β UCB, stored
        under the key prefix ``ucb_``), each a dict of NumPy arrays:
        ``acquired_order`` (300,) int candidate indices acquired after the 10 seeds;
        ``mae``, ``nlpd`` (300,) per-step mean absolute error and negative log predictive
        density of the prediction against the scalarizer; ``mean_pred_mean``,
        ``mean_pred_var`` (300,) per-step means of the predictive mean and variance; and the
        (50, 50) maps ``step0_pred_mean``, ``step0_pred_var``, ``step299_pred_mean``,
        ``step299_pred_var``. Use them as loose sanity bounds, not exact regression targets.
    """
    data = _open(path, PFM_FILE)
    runs = {}
    for ours, prefix in _POLICIES.items():
        runs[ours] = {f: np.array(_need(data, f"{prefix}_{f}", path))
                      for f in _RUN_FIELDS + _RUN_MAPS}
    return runs


def eels_world(
    path=None, *, n_seeds: int = 10, seed: int = 0, border: int = 8, dtype=jnp.float32
) -> World:
    """The plasmonic-nanoparticle EELS scalarizer map as a :class:`World` named "eels".

    The file holds only the (62, 75) scalarizer map (an energy-window sum, normalised to
    [0, 1]); the HAADF image it belongs to was not preserved. **The surrogate therefore cannot
    see structure here:** the inputs are the candidates' (row, col) coordinates, shifted so
    the first candidate is at 0 and divided by the larger of the two candidate spans (one
    scale for both axes, so distances stay isotropic), which puts them in [0, 1]. This is a
    plain spatial-interpolation benchmark, like the paper's coordinate-input EELS runs.

    Candidates are the pixels at least ``border`` from the edge (rows/cols ``border`` …
    H − ``border``, where the map is valid: 47 × 60 = 2820 for the default). ``image`` is the
    scalarizer map itself, **for plots only** (it is the answer, not a structural image).

    Args:
        path: the ``eels_plasmonic_scalarizer.npz`` file; default ``data_dir() / EELS_FILE``.
        n_seeds: number of seed measurements (≥ 1).
        seed: NumPy seed of the seed draw (indices drawn without replacement).
        border: width of the invalid frame, pixels (≥ 0).
        dtype: float dtype of the arrays.

    Returns:
        World with inputs (N, 2), targets (N,), image (62, 75).
    """
    data = _open(path, EELS_FILE)
    scalarizer = np.asarray(_need(data, "scalarizer_map", path), float)
    h, w = scalarizer.shape
    border = check_int_at_least("border", border, 0)
    if 2 * border >= min(h, w):
        raise ValueError(f"border must lie in [0, {(min(h, w) - 1) // 2}] pixels for a "
                         f"{h} × {w} map; got {border}")
    rows, cols = np.arange(border, h - border + 1), np.arange(border, w - border + 1)
    rows, cols = rows[rows < h], cols[cols < w]
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    centres = np.stack([rr.ravel(), cc.ravel()], axis=1)
    n = len(centres)
    n_seeds = check_int_at_least("n_seeds", n_seeds, 1)
    if n_seeds > n:
        raise ValueError(f"n_seeds must lie in [1, {n}] (the number of candidates); got "
                         f"{n_seeds}")
    span = max(rows[-1] - rows[0], cols[-1] - cols[0], 1)
    coords = (centres - centres.min(axis=0)) / span
    seeds = np.random.default_rng(seed).choice(n, size=n_seeds, replace=False)
    return World(
        inputs=np.asarray(coords, dtype),
        targets=np.asarray(scalarizer[centres[:, 0], centres[:, 1]], dtype),
        positions=np.asarray(centres, dtype),
        costs=np.ones(n, dtype),
        seeds=seeds.astype(np.int32),
        image=np.asarray(scalarizer, dtype),
        name="eels",
    )
