"""Train the STEMGym CNN analyst: a deep ensemble of small U-Nets (issue 9).

Simulates tiles of STEMGym worlds with the environment's forward model (all five materials,
all three difficulties, random doses and drift offsets; ``stemjax.worlds.stemgym.unet.
simulate_tiles``), labels every pixel from the ground truth (background, column, vacancy,
substitution; phase), and trains M U-Nets together under ``vmap`` with optax. Then:

- fits the analyst's peak thresholds (vacancy, substitution) on validation worlds, by the
  least total count error Σ|ĉ − c| over their tiles;
- scores the ensemble on held-out test worlds (new seeds, the "small" size): per-pixel
  accuracy, per-class F1, phase accuracy and per-tile count error;
- runs fully observed episodes on the test worlds (a raster at the budget's dwell) and
  scores the peak analyst, the CNN analyst and the ground-truth report on the four tasks.

Writes the weights to ``stemjax/worlds/stemgym/data/unet_analyst.eqx``
(``equinox.tree_serialise_leaves``) and their record (command, settings, scores, timings,
date) to ``unet_analyst.json`` beside them, read by ``load_unet_analyst()``::

    python benchmarks/train_stemgym_unet.py [--steps 1200] [--members 3] [--batch 24]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from stemjax.worlds import stemgym
from stemjax.worlds.stemgym import Action, rollout, unet
from stemjax.worlds.stemgym.analysts import (
    DATA_DIR,
    UNetAnalyst,
    count_peaks,
    load_unet_analyst,
    peak_analyst,
)

THRESHOLD_GRID = np.round(np.arange(0.2, 0.96, 0.05), 2)


def _worlds(seed0: int, size: str, per_cell: int, fractions=(None,)):
    """One world per (material, difficulty, copy); copies cycle through ``fractions``."""
    worlds = []
    for i, (material, difficulty) in enumerate(
        (m, d) for m in stemgym.MATERIALS for d in stemgym.DIFFICULTIES
    ):
        for c in range(per_cell):
            fraction = fractions[c % len(fractions)]
            changes = {} if fraction is None else {"defect_fraction": fraction}
            key = jax.random.key(seed0 + 100 * i + c)
            worlds.append(((material, difficulty), stemgym.make_world(key, material, difficulty,
                                                                      size, **changes)))
    return worlds


def _tiles(key, worlds, per_world, dose_range):
    keys = jax.random.split(key, len(worlds))
    batches = [unet.simulate_tiles(k, w, per_world, dose_range) for k, (_, w) in zip(keys, worlds)]
    return jax.tree.map(lambda *a: jnp.concatenate(a), *batches)


def _predict(ensemble, inputs, chunk=128):
    out = [unet.ensemble_predict(ensemble, inputs[i : i + chunk])
           for i in range(0, inputs.shape[0], chunk)]  # fmt: skip
    return jax.tree.map(lambda *a: jnp.concatenate(a), *out)


def _pixel_scores(probs, phase_prob, data) -> dict:
    pred = np.asarray(jnp.argmax(probs, -1)).ravel()
    true = np.asarray(data.classes).ravel()
    f1 = {}
    for k, name in enumerate(unet.CLASSES):
        tp = np.sum((pred == k) & (true == k))
        denom = np.sum(pred == k) + np.sum(true == k)
        f1[name] = float(2 * tp / denom) if denom else float("nan")
    phase_pred = np.asarray(phase_prob > 0.5).ravel()
    phase_true = np.asarray(data.phase).ravel().astype(bool)
    recall = [np.mean(phase_pred[phase_true == v] == v) for v in (False, True)]
    return {
        "pixel_accuracy": float(np.mean(pred == true)),
        "f1": f1,
        "phase_accuracy": float(np.mean(phase_pred == phase_true)),
        "phase_balanced_accuracy": float(np.mean(recall)),
    }


def _count_error(counts, truth) -> list[float]:
    """Per kind: Σ|ĉ − c| / Σc over tiles (the census error, one minus its score)."""
    return [float(np.sum(np.abs(counts[:, k] - truth[:, k])) / max(np.sum(truth[:, k]), 1.0))
            for k in range(2)]  # fmt: skip


def _fit_thresholds(probs, data) -> tuple[list[float], dict]:
    maps = jnp.moveaxis(probs[..., 2:], -1, -3)  # (n, 2, p, p)
    truth = np.asarray(data.counts)
    errors = {}
    for t in THRESHOLD_GRID:
        counts = np.asarray(count_peaks(maps, jnp.full((2,), t)))
        errors[float(t)] = _count_error(counts, truth)
    best = [float(min(errors, key=lambda t: errors[t][k])) for k in range(2)]
    return best, {str(t): e for t, e in errors.items()}


def _episode_scores(key, worlds, analysts) -> list[dict]:
    rows = []
    keys = jax.random.split(key, len(worlds))
    jitted = {name: jax.jit(a) for name, a in analysts.items()}
    for k, ((material, difficulty), world) in zip(keys, worlds):
        t = world.n_tiles
        dwell = float(jnp.minimum(world.budget_e_per_A2 / world.dose_per_us, world.max_dwell_us))
        raster = Action(jnp.arange(t), jnp.full(t, 0.98 * dwell), jnp.zeros(t, bool))
        final, _ = rollout(k, world, "census", raster)
        row = {"material": material, "difficulty": difficulty,
               "tile_dose_e_per_A2": float(final.tile_dose[0])}  # fmt: skip
        reports = {name: f(final, world) for name, f in jitted.items()}
        reports["ground_truth"] = stemgym.ground_truth_report(world, final.observed)
        reports["empty"] = stemgym.empty_report(world)
        for name, report in reports.items():
            scores = np.asarray(stemgym.task_scores(world, report, final.observed))
            row[name] = dict(zip(stemgym.TASKS, np.round(scores, 4).tolist()))
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1200, help="optimiser steps")
    parser.add_argument("--members", type=int, default=3, help="U-Nets in the ensemble")
    parser.add_argument("--channels", type=int, nargs=3, default=(8, 16, 32))
    parser.add_argument("--batch", type=int, default=24, help="tiles per member per step")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak Adam learning rate")
    parser.add_argument("--train-worlds", type=int, default=2,
                        help="default-size training worlds per material and difficulty")
    parser.add_argument("--tiles-per-world", type=int, default=128)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=DATA_DIR / "unet_analyst.eqx")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    timings = {}
    dose_range = (500.0, 20000.0)
    class_weights = (1.0, 1.0, 5.0, 8.0)

    key = jax.random.key(args.seed)
    k_train, k_val, k_test, k_init, k_fit, k_episodes = jax.random.split(key, 6)
    print("simulating tiles ...", flush=True)
    train_worlds = _worlds(10_000, "default", args.train_worlds, fractions=(0.12, None))
    val_worlds = _worlds(20_000, "default", 1)
    test_worlds = _worlds(30_000, "small", 1)
    train = _tiles(k_train, train_worlds, args.tiles_per_world, dose_range)
    val = _tiles(k_val, val_worlds, 48, dose_range)
    test = _tiles(k_test, test_worlds, 64, dose_range)
    jax.block_until_ready((train, val, test))
    timings["simulation_s"] = time.perf_counter() - start
    freq = np.bincount(np.asarray(train.classes).ravel(), minlength=4) / train.classes.size
    print(f"  {train.inputs.shape[0]} training tiles, class fractions {np.round(freq, 4)}; "
          f"{timings['simulation_s']:.0f} s", flush=True)

    ensemble = unet.init_ensemble(k_init, args.members, tuple(args.channels))
    t0 = time.perf_counter()

    def log(step, losses):
        print(f"  step {step:5d}  loss {np.round(losses.mean(0), 3)}  "
              f"{time.perf_counter() - t0:.0f} s", flush=True)

    ensemble, losses = unet.train_ensemble(
        k_fit, ensemble, train, steps=args.steps, batch=args.batch, learning_rate=args.lr,
        class_weights=class_weights, callback=log, log_every=100,
    )
    timings["training_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    val_probs, _, _, _ = _predict(ensemble, val.inputs)
    thresholds, threshold_errors = _fit_thresholds(val_probs, val)
    probs, phase_prob, entropy, mutual = _predict(ensemble, test.inputs)
    held_out = _pixel_scores(probs, phase_prob, test)
    counts = np.asarray(count_peaks(jnp.moveaxis(probs[..., 2:], -1, -3), jnp.asarray(thresholds)))
    held_out["count_error"] = dict(zip(("vacancy", "substitution"),
                                       _count_error(counts, np.asarray(test.counts))))  # fmt: skip
    held_out["tiles"] = int(test.inputs.shape[0])
    held_out["mean_entropy_nats"] = float(jnp.mean(entropy))
    held_out["mean_mutual_information_nats"] = float(jnp.mean(mutual))
    per_material = {}
    for m, name in enumerate(stemgym.MATERIALS):
        sel = np.asarray(test.material) == m
        sub = jax.tree.map(lambda a: a[sel], test)
        scores = _pixel_scores(probs[sel], phase_prob[sel], sub)
        scores["count_error"] = _count_error(counts[sel], np.asarray(sub.counts))
        per_material[name] = scores
    held_out["per_material"] = per_material
    timings["evaluation_s"] = time.perf_counter() - t0
    print(json.dumps({k: held_out[k] for k in ("pixel_accuracy", "f1", "phase_accuracy",
                                               "count_error")}, indent=1), flush=True)  # fmt: skip

    # save, then score whole episodes with the analyst as shipped (read back from disk)
    unet.save_ensemble(args.out, ensemble)
    command = "python " + " ".join(shlex.quote(a) for a in
                                   [os.path.relpath(sys.argv[0])] + sys.argv[1:])  # fmt: skip
    record = {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "members": args.members,
        "channels": list(args.channels),
        "n_parameters": ensemble.n_parameters,
        "weights_file": args.out.name,
        "weights_bytes": args.out.stat().st_size,
        "thresholds": thresholds,
        "phase_threshold": 0.5,
        "peak_radius_px": 2,
        "min_particle_area_A2": 6.0,
        "settings": {
            "steps": args.steps, "batch": args.batch, "learning_rate": args.lr,
            "schedule": "cosine decay to 5 %", "optimiser": "adam",
            "class_weights": list(class_weights), "phase_loss_weight": 0.5,
            "augmentation": "random x / y flips",
            "dose_range_e_per_A2": list(dose_range), "drift_time_s": 8.0,
            "train_worlds": f"{len(train_worlds)} default-size worlds (5 materials × 3 "
                            f"difficulties × {args.train_worlds}; defect_fraction 0.12 and preset)",
            "validation_worlds": f"{len(val_worlds)} default-size worlds (preset settings)",
            "test_worlds": f"{len(test_worlds)} small-size worlds (preset settings, new seeds)",
            "tiles": {"train": int(train.inputs.shape[0]), "validation": int(val.inputs.shape[0]),
                      "test": int(test.inputs.shape[0])},
            "seed": args.seed,
        },
        "final_loss": np.round(losses[-50:].mean(0), 4).tolist(),
        "held_out": held_out,
        "threshold_errors": threshold_errors,
        "platform": {"python": platform.python_version(), "jax": jax.__version__,
                     "machine": platform.machine(), "cpus": os.cpu_count(),
                     "backend": jax.default_backend()},
    }
    record_path = args.out.with_suffix(".json")
    record_path.write_text(json.dumps(record, indent=1) + "\n")

    t0 = time.perf_counter()
    cnn = load_unet_analyst(args.out)
    assert isinstance(cnn, UNetAnalyst)
    episodes = _episode_scores(k_episodes, test_worlds, {"peak": peak_analyst, "cnn": cnn})
    timings["episodes_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - start
    mean = {name: {task: float(np.mean([row[name][task] for row in episodes]))
                   for task in stemgym.TASKS}
            for name in ("empty", "peak", "cnn", "ground_truth")}  # fmt: skip
    record["episodes"] = {"setup": "small test worlds, fully observed by one raster at 98 % of "
                                   "the budget's dwell (about 5800 e⁻/Å² per tile)",
                          "mean": mean, "worlds": episodes}  # fmt: skip
    record["timings_s"] = {k: round(v, 1) for k, v in timings.items()}
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(mean, indent=1))
    print(f"wrote {args.out} ({record['weights_bytes']} bytes) and {record_path}; "
          f"training {timings['training_s']:.0f} s, total {timings['total_s']:.0f} s")


if __name__ == "__main__":
    main()
