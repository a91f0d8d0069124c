"""A small U-Net ensemble for STEMGym tiles: atom-column and defect segmentation plus phase.

The network maps one tile's standardised frame and material (:func:`tile_inputs`,
(p, p, C)) to per-pixel logits of four column classes (:data:`CLASSES`: background,
pristine column, vacancy, substitution) and one phase logit (phase 1 = grain or particle).
Architecture (channels ``(c1, c2, c3)``, default (8, 16, 32)):

    level 0  conv3×3 (C → c1) → ReLU → conv3×3 (c1 → c1) → ReLU ─────────────── skip 0
    level 1  max-pool 2 → conv3×3 (c1 → c2) → ReLU → conv3×3 (c2 → c2) → ReLU ── skip 1
    level 2  max-pool 2 → conv3×3 (c2 → c3) → ReLU → conv3×3 (c3 → c3) → ReLU
    up 1     nearest ×2 → concat skip 1 → conv3×3 (c3 + c2 → c2) → ReLU → conv3×3 → ReLU
    up 0     nearest ×2 → concat skip 0 → conv3×3 (c2 + c1 → c1) → ReLU → conv3×3 → ReLU
    head     1×1 (c1 → 4 + 1)

Convolutions are patch-matrix products (:func:`stemjax.models.layers.patches3x3`), so an
ensemble of M networks stacked on a leading axis runs under ``jax.vmap`` as batched matrix
products, which XLA runs fast on CPUs. The receptive field is 29 px (8 Å at 0.28 Å), two
lattice periods of the perovskites, enough to tell a rotated grain from the matrix.

Training utilities (they read the ground truth and are for the training script and tests,
never for an analyst): :func:`tile_labels` renders per-pixel labels from a world's truth
(discs of :data:`COLUMN_RADIUS_A` around every visible heavy column, vacancy and
substitution; the phase discs), :func:`simulate_tiles` records random tiles of a world at
random doses and drift offsets with the environment's forward model, :func:`train_ensemble`
fits an ensemble with optax. Weights are saved with ``equinox.tree_serialise_leaves``
(:func:`save_ensemble`, :func:`load_ensemble`); the architecture travels in a JSON beside
them. The shipped ensemble is read by
:func:`stemjax.worlds.stemgym.analysts.load_unet_analyst`.

Lengths in Å, dose in e⁻/Å², frames in detected electrons.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from stemjax._validation import check_int_at_least
from stemjax.models.layers import maxpool2, patches3x3, uniform_layers
from stemjax.physics.acquisition import Acquisition, acquire
from stemjax.physics.scan import ScanDistortion, ScanGrid
from stemjax.physics.specimen import Specimen
from stemjax.worlds.stemgym.worlds import MATERIALS, World

__all__ = [
    "CLASSES",
    "COLUMN_RADIUS_A",
    "N_INPUTS",
    "TileBatch",
    "UNet",
    "ensemble_predict",
    "init_ensemble",
    "load_ensemble",
    "save_ensemble",
    "simulate_tiles",
    "tile_inputs",
    "tile_labels",
    "train_ensemble",
]

CLASSES = ("background", "column", "vacancy", "substitution")
"""Per-pixel column classes of the U-Net, in the order of its first four logits."""

N_MATERIALS = len(MATERIALS)

N_INPUTS = 3 + N_MATERIALS
"""Input channels of :func:`tile_inputs`: standardised frame, detected fraction, log dose,
and the material as one-hot planes (the material is public: the user knows the sample)."""

COLUMN_RADIUS_A = 0.6
"""Radius of the labelled disc around a column, vacancy or substitution, Å."""

LABEL_MIN_Z = 10
"""Columns of elements lighter than this (C, N, O) are labelled background: at HAADF they
are barely visible, and the defects of every STEMGym material sit on heavier columns."""

FRACTION_SCALE = 0.02
"""Detected fraction that maps to 1 in the second input channel."""

REFERENCE_DOSE_E_PER_A2 = 2000.0
"""Dose that maps to 0 in the third input channel (log10 of dose / this)."""


# --------------------------------------------------------------------------------------------
# inputs


def tile_inputs(
    frames: Float[Array, "... p p"], tile_dose: Float[Array, "..."], pixel_A: float, material
) -> Float[Array, "... p p C"]:
    """Standardised network inputs of tiles: what an analyst may compute from its frames.

    Channels (C = :data:`N_INPUTS`): (0) the detected fraction f = frame / (dose · pixel²)
    standardised per tile (zero mean, unit standard deviation), (1) f /
    :data:`FRACTION_SCALE` (absolute contrast: Au particles are brighter than their carbon
    support), (2) log10(dose / :data:`REFERENCE_DOSE_E_PER_A2`) (the noise level), (3 …)
    the material, one-hot over :data:`~stemjax.worlds.stemgym.worlds.MATERIALS` (whether a
    substitution is brighter or darker than its column depends on it). A tile with no dose
    gives zeros.

    Args:
        frames: (..., p, p) detected electrons summed over a tile's frames.
        tile_dose: (...) dose each tile received, e⁻/Å².
        pixel_A: probe step, Å.
        material: () or (...) int index into ``MATERIALS`` (``World.material``).
    """
    frames = jnp.asarray(frames)
    dose = jnp.asarray(tile_dose, frames.dtype)
    seen = dose > 0
    per_pixel = jnp.where(seen, dose, 1.0) * pixel_A**2
    f = frames / per_pixel[..., None, None]
    mean = jnp.mean(f, axis=(-2, -1), keepdims=True)
    std = jnp.std(f, axis=(-2, -1), keepdims=True)
    z = (f - mean) / (std + 1e-3 * jnp.abs(mean) + 1e-6)
    log_dose = jnp.log10(jnp.where(seen, dose, 1.0) / REFERENCE_DOSE_E_PER_A2)
    x = jnp.stack(
        [z, f / FRACTION_SCALE, jnp.broadcast_to(log_dose[..., None, None], f.shape)], axis=-1
    )
    onehot = jax.nn.one_hot(jnp.broadcast_to(jnp.asarray(material), dose.shape), N_MATERIALS,
                            dtype=f.dtype)  # fmt: skip
    x = jnp.concatenate([x, jnp.broadcast_to(onehot[..., None, None, :],
                                             f.shape + (N_MATERIALS,))], axis=-1)  # fmt: skip
    return jnp.where(seen[..., None, None, None], x, 0.0)


# --------------------------------------------------------------------------------------------
# the network


def _conv(x, w, b):
    return jax.nn.relu(patches3x3(x) @ w + b)


def _up2(x):
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class UNet(eqx.Module):
    """A 2-level U-Net (see the module docstring): (n, p, p, C) → (n, p, p, 5) logits.

    Logits 0–3 are the column classes of :data:`CLASSES` (softmax), logit 4 the phase
    (sigmoid: probability of phase 1). p must be a multiple of 4. An ensemble is the same
    module with every array stacked on a leading member axis (:func:`init_ensemble`).

    Args:
        key: PRNG key for the initial weights (uniform in ±1/√fan-in).
        channels: (c1, c2, c3) channels of the three levels; default (8, 16, 32).
        dtype: float dtype of the weights (default: JAX's default float).
    """

    weights: tuple[Float[Array, "k c"], ...]
    biases: tuple[Float[Array, " c"], ...]
    channels: tuple[int, int, int] = eqx.field(static=True)

    def __init__(self, key: PRNGKeyArray, channels=(8, 16, 32), *, dtype=None):
        if len(tuple(channels)) != 3:
            raise ValueError(f"channels must be three positive integers (c1, c2, c3); got "
                             f"{channels!r}")  # fmt: skip
        c1, c2, c3 = (check_int_at_least("channels", c, 1) for c in channels)
        dtype = jnp.dtype(dtype or jnp.result_type(float))
        io = ((N_INPUTS, c1), (c1, c1), (c1, c2), (c2, c2), (c2, c3), (c3, c3),
              (c3 + c2, c2), (c2, c2), (c2 + c1, c1), (c1, c1))  # fmt: skip
        shapes = []
        for cin, cout in io:
            shapes += [((9 * cin, cout), 9 * cin), ((cout,), 9 * cin)]
        shapes += [((c1, len(CLASSES) + 1), c1), ((len(CLASSES) + 1,), c1)]
        arrays = uniform_layers(key, tuple(shapes), dtype)
        self.weights = tuple(arrays[0::2])
        self.biases = tuple(arrays[1::2])
        self.channels = (c1, c2, c3)

    def __call__(self, x: Float[Array, "n p p C"]) -> Float[Array, "n p p 5"]:
        """Logits (n, p, p, 5) of inputs (n, p, p, C) from :func:`tile_inputs`."""
        w, b = self.weights, self.biases
        x = x.astype(w[0].dtype)
        s0 = _conv(_conv(x, w[0], b[0]), w[1], b[1])
        s1 = _conv(_conv(maxpool2(s0), w[2], b[2]), w[3], b[3])
        h = _conv(_conv(maxpool2(s1), w[4], b[4]), w[5], b[5])
        h = jnp.concatenate([_up2(h), s1], axis=-1)
        h = _conv(_conv(h, w[6], b[6]), w[7], b[7])
        h = jnp.concatenate([_up2(h), s0], axis=-1)
        h = _conv(_conv(h, w[8], b[8]), w[9], b[9])
        return h @ w[10] + b[10]

    @property
    def n_parameters(self) -> int:
        """Number of weights and biases (of all members, for an ensemble)."""
        return sum(int(a.size) for a in (*self.weights, *self.biases))


def init_ensemble(key: PRNGKeyArray, members: int = 3, channels=(8, 16, 32), *,
                  dtype=None) -> UNet:  # fmt: skip
    """M U-Nets with independent initial weights, stacked on a leading member axis.

    Args:
        key: PRNG key (split into one per member).
        members: M ≥ 1.
        channels: (c1, c2, c3) of every member.
        dtype: float dtype of the weights.
    """
    m = check_int_at_least("members", members, 1)
    keys = jax.random.split(key, m)
    nets = [UNet(k, channels, dtype=dtype) for k in keys]
    return jax.tree.map(lambda *a: jnp.stack(a), *nets)


def _check_inputs(x) -> None:
    shape = jnp.shape(x)
    if len(shape) != 4 or shape[-1] != N_INPUTS or shape[1] % 4 or shape[2] % 4 or shape[1] < 4:
        raise ValueError(f"inputs must have shape (n, p, p, {N_INPUTS}) with p a multiple of 4 "
                         f"(from tile_inputs); got {shape}")  # fmt: skip


def ensemble_logits(ensemble: UNet, x: Float[Array, "n p p C"]) -> Float[Array, "M n p p 5"]:
    """(M, n, p, p, 5) logits of every member (no validation; traceable)."""
    return jax.vmap(lambda net: net(x))(ensemble)


def ensemble_predict(ensemble: UNet, x: Float[Array, "n p p C"]):
    """Ensemble prediction for tiles.

    Args:
        ensemble: stacked U-Nets (:func:`init_ensemble` or :func:`load_ensemble`).
        x: (n, p, p, C) inputs from :func:`tile_inputs`, p a multiple of 4.

    Returns:
        ``(class_probs, phase_prob, entropy, mutual_information)``: (n, p, p, 4) mean class
        probabilities over members, (n, p, p) mean probability of phase 1, (n, p, p) entropy
        of the mean class probabilities (nats, total uncertainty) and (n, p, p) mutual
        information between prediction and member (nats, the members' disagreement).
    """
    _check_inputs(x)
    return _predict(ensemble, x)


@eqx.filter_jit
def _predict(ensemble, x):
    return _summarise(ensemble_logits(ensemble, x))


def _summarise(logits):
    probs = jax.nn.softmax(logits[..., : len(CLASSES)], axis=-1)  # (M, n, p, p, 4)
    mean = jnp.mean(probs, axis=0)
    phase = jnp.mean(jax.nn.sigmoid(logits[..., -1]), axis=0)
    entropy = -jnp.sum(mean * jnp.log(jnp.clip(mean, 1e-12, 1.0)), axis=-1)
    member_entropy = -jnp.sum(probs * jnp.log(jnp.clip(probs, 1e-12, 1.0)), axis=-1)
    mutual = jnp.maximum(entropy - jnp.mean(member_entropy, axis=0), 0.0)
    return mean, phase, entropy, mutual


# --------------------------------------------------------------------------------------------
# saving


def save_ensemble(path, ensemble: UNet) -> None:
    """Write the ensemble's arrays with ``equinox.tree_serialise_leaves`` (no pickle)."""
    eqx.tree_serialise_leaves(path, ensemble)


def load_ensemble(path, members: int, channels, *, dtype=None) -> UNet:
    """Read an ensemble written by :func:`save_ensemble`.

    Args:
        path: the ``.eqx`` file.
        members: M, as saved.
        channels: (c1, c2, c3), as saved.
        dtype: float dtype, as saved (default: JAX's default float).

    Raises:
        ValueError: when the file does not hold an ensemble of that shape.
    """
    like = init_ensemble(jax.random.key(0), members, channels, dtype=dtype)
    try:
        return eqx.tree_deserialise_leaves(path, like)
    except (RuntimeError, ValueError, OSError, EOFError) as error:
        raise ValueError(f"{path} does not hold a U-Net ensemble of {members} members with "
                         f"channels {tuple(channels)}: {error}") from error  # fmt: skip


# --------------------------------------------------------------------------------------------
# training data (reads the ground truth: for training and tests only)


class TileBatch(eqx.Module):
    """Simulated tiles with their labels.

    Attributes:
        inputs: (n, p, p, C) network inputs (:func:`tile_inputs`).
        classes: (n, p, p) int32 column class of each pixel (index into :data:`CLASSES`).
        phase: (n, p, p) int32 phase of each pixel.
        dose: (n,) dose of each tile, e⁻/Å².
        counts: (n, 2) vacancies and substitutions whose centres lie in the recorded raster.
        material: (n,) int32 material index of the world each tile came from.
    """

    inputs: Float[Array, "n p p C"]
    classes: Int[Array, "n p p"]
    phase: Int[Array, "n p p"]
    dose: Float[Array, " n"]
    counts: Float[Array, "n 2"]
    material: Int[Array, " n"]


def _tile_specimen(world: World, indices) -> Specimen:
    spec = world.specimen
    ok = indices < spec.capacity
    safe = jnp.where(ok, indices, 0)
    sub = jax.tree.map(lambda a: a[safe] if a.ndim and a.shape[0] == spec.capacity else a, spec)
    return eqx.tree_at(lambda s: s.present, sub, spec.present[safe] & ok)


def tile_labels(world: World, tile, offset_A):
    """Per-pixel labels of one tile recorded with its raster displaced by ``offset_A``.

    Reads the ground truth (training only). A pixel takes the class of the nearest labelled
    site within :data:`COLUMN_RADIUS_A`: vacancies (atom type 1) → 2, substitutions (2) → 3,
    other present, occupied sites of elements with Z ≥ :data:`LABEL_MIN_Z` → 1 (column);
    else 0 (background). The phase is 1 inside a truth disc.

    Args:
        world: the world.
        tile: () int, the tile.
        offset_A: (2,) displacement (x, y) of the raster from the tile, Å (the drift).

    Returns:
        ``(classes, phase, counts)``: (p, p) int32 classes, (p, p) int32 phase, and (2,) the
        vacancies and substitutions whose centres fall inside the displaced raster.
    """
    spec, truth = world.specimen, world.truth
    indices = world.tile_sites[tile]
    ok = indices < spec.capacity
    safe = jnp.where(ok, indices, 0)
    grid = ScanGrid(world.tile_shape, world.pixel_A,
                    world.tile_origins()[tile] + jnp.asarray(offset_A))  # fmt: skip
    xy = grid.positions()  # (p, p, 2)
    types = truth.atom_types[safe]
    heavy = (spec.atomic_numbers[safe] >= LABEL_MIN_Z) & (
        spec.counts[safe] * spec.occupancies[safe] > 0
    )
    cls = jnp.where(types == 1, 2, jnp.where(types == 2, 3, jnp.where(heavy, 1, 0)))
    labelled = ok & truth.present[safe] & (cls > 0)
    d2 = jnp.sum((xy[:, :, None, :] - truth.atom_xy[safe][None, None]) ** 2, axis=-1)
    d2 = jnp.where(labelled[None, None], d2, jnp.inf)
    nearest = jnp.argmin(d2, axis=-1)
    close = jnp.min(d2, axis=-1) < COLUMN_RADIUS_A**2
    classes = jnp.where(close, cls[nearest], 0).astype(jnp.int32)
    discs = truth.discs
    d2_disc = jnp.sum((xy[:, :, None, :] - discs[None, None, :, :2]) ** 2, axis=-1)
    inside = d2_disc < discs[:, 2] ** 2
    pixel = (truth.atom_xy[safe] - grid.origin) / world.pixel_A
    p = world.tile_px
    within = ok & truth.present[safe] & jnp.all((pixel >= -0.5) & (pixel < p - 0.5), axis=-1)
    dtype = world.field.origin.dtype
    counts = jnp.stack([jnp.sum(within & (types == 1)), jnp.sum(within & (types == 2))])
    counts = counts.astype(dtype)
    return classes, jnp.any(inside, axis=-1).astype(jnp.int32), counts


def simulate_tiles(
    key: PRNGKeyArray,
    world: World,
    n: int,
    dose_range_e_per_A2=(300.0, 20000.0),
    drift_time_s: float = 8.0,
) -> TileBatch:
    """Record ``n`` random tiles of ``world`` as the environment would, with their labels.

    Each tile is drawn uniformly, with a dose log-uniform in ``dose_range_e_per_A2`` and the
    raster displaced by a drift offset uniform in a disc of radius
    min(``world.max_drift_A``, ``world.drift_A_per_s`` · ``drift_time_s``) (random direction);
    the frame has the world's drift velocity, line jitter, Poisson and read noise. The
    specimen is the undamaged one. Reads the ground truth (training only).

    Args:
        key: PRNG key.
        world: the world.
        n: tiles to record (static).
        dose_range_e_per_A2: (low, high) dose range, e⁻/Å², 0 < low ≤ high.
        drift_time_s: time over which the drift accumulates, s (≥ 0).
    """
    n = check_int_at_least("n", n, 1)
    low, high = (float(v) for v in dose_range_e_per_A2)
    if not (0 < low <= high and math.isfinite(high)):
        raise ValueError(f"dose_range_e_per_A2 must be (low, high) with 0 < low <= high, "
                         f"e⁻/Å²; got {dose_range_e_per_A2!r}")  # fmt: skip
    return _simulate(key, world, n, low, high, float(drift_time_s))


@eqx.filter_jit
def _simulate(key, world: World, n, low, high, drift_time_s):
    k_tile, k_dose, k_off, k_dir, k_img = jax.random.split(key, 5)
    dtype = world.field.origin.dtype
    tiles = jax.random.randint(k_tile, (n,), 0, world.n_tiles)
    dose = jnp.exp(jax.random.uniform(k_dose, (n,), dtype, math.log(low), math.log(high)))
    reach = jnp.minimum(world.max_drift_A, world.drift_A_per_s * drift_time_s)
    u = jax.random.uniform(k_off, (n, 2), dtype)
    radius = reach * jnp.sqrt(u[:, 0])
    offsets = radius[:, None] * jnp.stack([jnp.cos(2 * jnp.pi * u[:, 1]),
                                           jnp.sin(2 * jnp.pi * u[:, 1])], -1)  # fmt: skip
    angle = 2 * jnp.pi * jax.random.uniform(k_dir, (n,), dtype)
    velocity = world.drift_A_per_s * jnp.stack([jnp.cos(angle), jnp.sin(angle)], -1)

    def one(k, tile, d, offset, v):
        grid = ScanGrid(world.tile_shape, world.pixel_A, world.tile_origins()[tile] + offset)
        settings = Acquisition(
            current_pA=world.current_pA, dwell_us=d / world.dose_per_us,
            distortion=ScanDistortion(v, world.line_jitter_A, world.flyback_us),
            read_noise=world.read_noise, noise="poisson",
        )
        frame = acquire(k, world.imaging, _tile_specimen(world, world.tile_sites[tile]), grid,
                        settings).image  # fmt: skip
        classes, phase, counts = tile_labels(world, tile, offset)
        return frame, classes, phase, counts

    frames, classes, phase, counts = jax.lax.map(
        lambda a: one(*a), (jax.random.split(k_img, n), tiles, dose, offsets, velocity),
        batch_size=min(n, 32),
    )
    return TileBatch(
        inputs=tile_inputs(frames, dose, world.pixel_A, world.material),
        classes=classes, phase=phase,
        dose=dose, counts=counts, material=jnp.full((n,), world.material, jnp.int32),
    )


# --------------------------------------------------------------------------------------------
# training


def _loss(net: UNet, x, classes, phase, class_weights, phase_weight):
    logits = net(x)
    log_p = jax.nn.log_softmax(logits[..., : len(CLASSES)], axis=-1)
    picked = jnp.take_along_axis(log_p, classes[..., None], axis=-1)[..., 0]
    weights = class_weights[classes]
    ce = -jnp.sum(weights * picked) / jnp.sum(weights)
    bce = jnp.mean(optax.sigmoid_binary_cross_entropy(logits[..., -1], phase.astype(x.dtype)))
    return ce + phase_weight * bce


def train_ensemble(
    key: PRNGKeyArray,
    ensemble: UNet,
    data: TileBatch,
    steps: int = 1200,
    batch: int = 24,
    learning_rate: float = 3e-3,
    class_weights=(1.0, 1.0, 5.0, 8.0),
    phase_weight: float = 0.5,
    flips: bool = True,
    callback=None,
    log_every: int = 100,
) -> tuple[UNet, np.ndarray]:
    """Fit every member of ``ensemble`` on ``data`` together (vmapped), with Adam.

    Each member sees its own random minibatches (and random x/y flips when ``flips``), so
    members differ by initial weights and data order. The loss is the class-weighted
    per-pixel cross-entropy plus ``phase_weight`` × the phase binary cross-entropy. The
    learning rate decays by cosine to 5 % of ``learning_rate``.

    Args:
        key: PRNG key for the minibatches and flips.
        ensemble: stacked U-Nets (:func:`init_ensemble`).
        data: training tiles (:func:`simulate_tiles`, concatenated).
        steps: optimiser steps ≥ 1.
        batch: tiles per member per step ≥ 1.
        learning_rate: peak Adam learning rate (> 0).
        class_weights: (4,) loss weights of :data:`CLASSES` (> 0).
        phase_weight: weight of the phase loss (≥ 0).
        flips: augment with random flips of x and y.
        callback: optional ``f(step, losses)`` called every ``log_every`` steps (host side).
        log_every: steps between callbacks.

    Returns:
        ``(ensemble, losses)``: the trained ensemble and the (steps, M) training losses.
    """
    steps = check_int_at_least("steps", steps, 1)
    batch = check_int_at_least("batch", batch, 1)
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0; got {learning_rate!r}")
    cw = jnp.asarray(class_weights, data.inputs.dtype)
    if cw.shape != (len(CLASSES),) or not bool(jnp.all(cw > 0)):
        raise ValueError(f"class_weights must be {len(CLASSES)} positive numbers; got "
                         f"{class_weights!r}")  # fmt: skip
    members = ensemble.weights[0].shape[0]
    schedule = optax.cosine_decay_schedule(learning_rate, steps, alpha=0.05)
    optimiser = optax.adam(schedule)
    opt_state = jax.vmap(optimiser.init)(ensemble)
    n = data.inputs.shape[0]

    @eqx.filter_jit
    def update(ensemble, opt_state, k, data):
        k_idx, k_flip = jax.random.split(k)
        idx = jax.random.randint(k_idx, (members, batch), 0, n)
        flip = jax.random.bernoulli(k_flip, 0.5, (members, 2)) & flips

        def member(net, state, idx, flip):
            x, c, p = data.inputs[idx], data.classes[idx], data.phase[idx]
            x, c, p = (jnp.where(flip[0], a[:, ::-1], a) for a in (x, c, p))
            x, c, p = (jnp.where(flip[1], a[:, :, ::-1], a) for a in (x, c, p))
            loss, grads = jax.value_and_grad(_loss)(net, x, c, p, cw, phase_weight)
            updates, state = optimiser.update(grads, state, net)
            return optax.apply_updates(net, updates), state, loss

        return jax.vmap(member)(ensemble, opt_state, idx, flip)

    losses = []
    keys = jax.random.split(key, steps)
    for i in range(steps):
        ensemble, opt_state, loss = update(ensemble, opt_state, keys[i], data)
        losses.append(loss)
        if callback is not None and ((i + 1) % log_every == 0 or i + 1 == steps):
            callback(i + 1, np.asarray(jnp.stack(losses[-log_every:])))
    return ensemble, np.asarray(jnp.stack(losses))
