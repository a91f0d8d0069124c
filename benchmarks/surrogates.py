"""Surrogate speed against GPJax and GPyTorch, same machine, same run.

(a) Prediction, mean and diagonal variance, for many independent GPs at once: 4096 datasets of
    64 points in 8-D, 1024 candidates each, RBF kernel with per-dataset ARD lengthscales.
    stemjax ``predict`` under ``jit(vmap)`` against GPJax's ``predict`` under ``jit(vmap)``, both
    with its default dense covariance and with ``covariance="diagonal"``. GPJax's dense route
    needs a 1024 × 1024 matrix per dataset (16 GiB for all 4096 in float32), so it runs in
    chunks through ``lax.map(..., batch_size=...)``; the chunk is in the metadata. The maximum
    differences between the libraries' means and variances are reported as a check.

(b) One deep-kernel refit-and-predict step on the real PFM patches (shared/data/pfm_pto_beacon):
    ``steps`` Adam steps (learning rate 0.01) on the marginal likelihood of 100 training patches,
    then the predictive mean and variance on all 1225 candidate patches. stemjax (the papers'
    CNN, 2-D latent, RBF base kernel, exact GP) for 1, 64 and 1024 campaigns at once, each with
    its own training set and network, warm-started from a previous fit; against GPyTorch
    (the same CNN as a torch module, ``ExactGP`` with ``ScaleKernel(RBFKernel)``, constant mean,
    Gaussian likelihood, Adam) doing the same step for one campaign. Reported: seconds per
    campaign and the per-campaign speed-up. Campaign batches run as ``lax.map`` over chunks of
    ``vmap`` (memory: the CNN activations of 1225 candidates are about 65 MB per campaign).
    A second GPyTorch row times the papers' own per-step setting, 100 Adam steps on a freshly
    built GP (shared/papers/003 notebooks, ``num_epochs=100``); its ratio compares different
    amounts of work and is labelled so.

Writes ``benchmarks/results/surrogates.json`` and ``surrogates.md``. Run with the bench extra:

    python benchmarks/surrogates.py [--quick] [--repeats 3] [--dkl-steps 20]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import multiprocessing
import os
import platform
import time
import warnings
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from stemjax.models import GPData, GPParams, Kernel, fit, init_dkl, predict

RESULTS = Path(__file__).parent / "results"
PFM = Path(__file__).resolve().parents[2] / "shared" / "data" / "pfm_pto_beacon" / "pfm_pto_beacon.npz"


def best_time(fn, repeats: int) -> float:
    jax.block_until_ready(fn())  # compile and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)


# ----------------------------------------------------------------------------- (a) prediction


def prediction_benchmark(args) -> tuple[dict, list[dict]]:
    import gpjax as gpx

    b, n, d, m = args.datasets, args.points, args.dim, args.candidates
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (b, n, d)).astype(np.float32)
    y = (np.sin(4 * x[..., 0]) + x[..., 1] ** 2 + 0.05 * rng.normal(size=(b, n))).astype(np.float32)
    xs = rng.uniform(0, 1, (b, m, d)).astype(np.float32)
    ls = rng.uniform(0.3, 1.5, (b, d)).astype(np.float32)
    s2, noise = np.float32(1.0), np.float32(0.01)
    x, y, xs, ls = map(jnp.asarray, (x, y, xs, ls))

    params = jax.vmap(lambda lv: GPParams(Kernel("rbf", lv, s2), noise=noise))(ls)
    data = jax.vmap(GPData)(x, y)

    def ours(p, dd, c):
        post = predict(p, dd, c)
        return post.mean, post.variance

    ours_fn = jax.jit(jax.vmap(ours))

    def theirs(ls_i, x_i, y_i, xs_i, covariance):
        kernel = gpx.kernels.RBF(lengthscale=ls_i, variance=s2)
        prior = gpx.gps.Prior(mean_function=gpx.mean_functions.Zero(), kernel=kernel)
        posterior = prior * gpx.likelihoods.Gaussian(obs_stddev=jnp.sqrt(noise))
        dist = posterior.predict(xs_i, gpx.Dataset(X=x_i, y=y_i[:, None]), covariance=covariance)
        return dist.mean, dist.variance

    def chunked(covariance, chunk):
        one = lambda a: theirs(*a, covariance)  # noqa: E731
        if chunk >= b:
            return jax.jit(lambda *a: jax.vmap(lambda *z: one(z))(*a))
        return jax.jit(lambda *a: jax.lax.map(one, a, batch_size=chunk))

    dense_fn = chunked("dense", args.gpjax_chunk)
    diag_fn = chunked("diagonal", b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GPJax warns that float32 data may be unstable
        t_ours = best_time(lambda: ours_fn(params, data, xs), args.repeats)
        t_dense = best_time(lambda: dense_fn(ls, x, y, xs), max(1, args.repeats - 1))
        t_diag = best_time(lambda: diag_fn(ls, x, y, xs), args.repeats)
        m_ours, v_ours = ours_fn(params, data, xs)
        m_theirs, v_theirs = diag_fn(ls, x, y, xs)
    check = {
        "max_abs_mean_difference": float(jnp.max(jnp.abs(m_ours - m_theirs))),
        "max_abs_variance_difference": float(jnp.max(jnp.abs(v_ours - v_theirs))),
    }
    rows = [
        {"method": "stemjax predict, jit(vmap)", "seconds": t_ours},
        {"method": f"GPJax predict (default dense covariance), lax.map chunks of {args.gpjax_chunk}",
         "seconds": t_dense},
        {"method": "GPJax predict(covariance='diagonal'), jit(vmap)", "seconds": t_diag},
    ]  # fmt: skip
    for row in rows:
        row["datasets_per_s"] = b / row["seconds"]
        row["stemjax_speedup"] = row["seconds"] / t_ours
    meta = {
        "problem": f"{b} datasets × {n} points in {d}-D, {m} candidates each, RBF (ARD), float32",
        "output": "mean and diagonal variance of the latent function",
        **check,
    }
    return meta, rows


def _prediction_child(args, queue) -> None:
    queue.put(prediction_benchmark(args))


def prediction_in_child(args) -> tuple[dict, list[dict]]:
    """(a) in a fresh process, retried when it stops making progress: XLA's CPU thread pool can
    wedge on vmapped programs with LAPACK calls: GPJax's predictions stopped at 0 % CPU in about
    one call of ten on 2 cores, at random (cf. PyAutoLabs/PyAutoFit#1530; stemjax's own
    prediction never did). The number of attempts is recorded."""
    context = multiprocessing.get_context("spawn")
    for attempt in range(1, args.attempts + 1):
        queue = context.Queue()
        child = context.Process(target=_prediction_child, args=(args, queue))
        child.start()
        begin = time.perf_counter()
        while queue.empty() and child.is_alive():
            if time.perf_counter() - begin > args.child_timeout:
                break
            time.sleep(1.0)
        if not queue.empty():  # a child puts its result before it exits
            meta, rows = queue.get()
            child.join()
            return {**meta, "attempts": attempt}, rows
        child.kill()
        child.join()
        print(f"  attempt {attempt}: no result (wedged or killed); starting again", flush=True)
    raise RuntimeError(f"(a) gave no result in {args.attempts} attempts")


# ----------------------------------------------------------------------------- (b) DKL step


def load_pfm():
    npz = np.load(PFM, allow_pickle=False)
    centres = npz["patch_centers"]
    target = npz["scalarizer_map"][centres[:, 0], centres[:, 1]]
    return npz["patches"].astype(np.float32), target.astype(np.float32)


def stemjax_dkl(args, patches, target) -> list[dict]:
    steps, n_train = args.dkl_steps, 100
    optimizer = optax.adam(0.01)
    candidates = jnp.asarray(patches)

    def campaign_data(seed):
        idx = np.random.default_rng(seed).choice(len(target), n_train, replace=False)
        return patches[idx], target[idx]

    def step(params, opt_state, data):
        """One campaign step: warm refit, then predict every candidate."""
        result = fit(params, data, steps=steps, optimizer=optimizer, opt_state=opt_state)
        post = predict(result.params, data, candidates)
        return result.params, result.opt_state, post.mean, post.variance

    def prepare(b):
        xs, ys = zip(*(campaign_data(s) for s in range(b)))
        data = jax.vmap(GPData)(jnp.asarray(np.stack(xs)), jnp.asarray(np.stack(ys)))
        keys = jax.random.split(jax.random.key(0), b)
        params = jax.vmap(init_dkl)(keys, data)
        opt_state = jax.vmap(optimizer.init)(eqx.filter(params, eqx.is_inexact_array))
        return params, opt_state, data

    rows = []
    for b in args.campaigns:
        params, opt_state, data = prepare(b)
        chunk = min(b, args.dkl_chunk)

        @jax.jit
        def many(params, opt_state, data):
            return jax.lax.map(lambda a: step(*a), (params, opt_state, data), batch_size=chunk)

        if b < args.single_run_from:
            # warm start: the timed step continues from a previous step's fit
            params, opt_state, _, _ = jax.block_until_ready(many(params, opt_state, data))
            t = best_time(lambda: many(params, opt_state, data), args.repeats)
        else:  # compile ahead of time, then one timed run (same work as a warm step)
            compiled = many.lower(params, opt_state, data).compile()
            start = time.perf_counter()
            jax.block_until_ready(compiled(params, opt_state, data))
            t = time.perf_counter() - start
        rows.append({"method": "stemjax DKL refit + predict", "campaigns": b, "chunk": chunk,
                     "seconds": t, "seconds_per_campaign": t / b})  # fmt: skip
        print(f"  stemjax DKL, {b} campaigns: {t:.2f} s ({t / b * 1e3:.1f} ms per campaign)",
              flush=True)
    return rows


def gpytorch_dkl(args, patches, target, steps: int, fresh_gp: bool) -> float:
    import gpytorch
    import torch
    from torch_cnn import PapersCNN

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)

    class DKL(gpytorch.models.ExactGP):
        def __init__(self, x, y, likelihood, features):
            super().__init__(x, y, likelihood)
            self.features = features
            self.mean = gpytorch.means.ConstantMean()
            self.cov = gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel(ard_num_dims=2))

        def forward(self, x):
            z = self.features(x)
            return gpytorch.distributions.MultivariateNormal(self.mean(z), self.cov(z))

    idx = np.random.default_rng(0).choice(len(target), 100, replace=False)
    x = torch.from_numpy(patches[idx].reshape(100, -1))
    y = torch.from_numpy(target[idx])
    candidates = torch.from_numpy(patches.reshape(len(patches), -1))
    features = PapersCNN()
    likelihood = gpytorch.likelihoods.GaussianLikelihood()
    model = DKL(x, y, likelihood, features)

    def one_step():
        nonlocal model, likelihood
        if fresh_gp:  # the papers' loop: a new GP each step around the warm feature network
            likelihood = gpytorch.likelihoods.GaussianLikelihood()
            model = DKL(x, y, likelihood, features)
        model.train()
        likelihood.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        mll = gpytorch.mlls.ExactMarginalLogLikelihood(likelihood, model)
        for _ in range(steps):
            optimizer.zero_grad()
            loss = -mll(model(x), y)
            loss.backward()
            optimizer.step()
        model.eval()
        likelihood.eval()
        with torch.no_grad():
            pred = model(candidates)
            return pred.mean.numpy(), pred.variance.numpy()

    one_step()  # warm-up (and a previous step's fit to start from)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        one_step()
        times.append(time.perf_counter() - start)
    return min(times)


def dkl_benchmark(args) -> tuple[dict, list[dict]]:
    patches, target = load_pfm()
    rows = stemjax_dkl(args, patches, target)
    t_torch = gpytorch_dkl(args, patches, target, args.dkl_steps, fresh_gp=False)
    t_paper = gpytorch_dkl(args, patches, target, 100, fresh_gp=True)
    print(f"  GPyTorch DKL, 1 campaign: {t_torch:.3f} s; papers' 100-step setting {t_paper:.3f} s")
    rows += [
        {"method": "GPyTorch DKL refit + predict (same step)", "campaigns": 1, "chunk": 1,
         "seconds": t_torch, "seconds_per_campaign": t_torch},
        {"method": "GPyTorch DKL, papers' setting: new GP + 100 Adam steps + predict "
                   "(different work)", "campaigns": 1, "chunk": 1,
         "seconds": t_paper, "seconds_per_campaign": t_paper},
    ]  # fmt: skip
    for row in rows:
        row["speedup_vs_gpytorch_same_step"] = t_torch / row["seconds_per_campaign"]
        row["speedup_vs_gpytorch_papers_setting"] = t_paper / row["seconds_per_campaign"]
    meta = {
        "step": f"{args.dkl_steps} Adam steps (lr 0.01) on 100 training patches 16×16, then mean "
                "and variance on 1225 candidates; papers' CNN (16, 32 channels, 2-D latent)",
        "campaign_batches": "lax.map over chunks of vmap (chunk column)",
    }  # fmt: skip
    return meta, rows


# ----------------------------------------------------------------------------- report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--datasets", type=int, default=4096)
    parser.add_argument("--points", type=int, default=64)
    parser.add_argument("--dim", type=int, default=8)
    parser.add_argument("--candidates", type=int, default=1024)
    parser.add_argument("--gpjax-chunk", type=int, default=128)
    parser.add_argument("--campaigns", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument("--dkl-steps", type=int, default=20)
    parser.add_argument("--dkl-chunk", type=int, default=16)
    parser.add_argument("--single-run-from", type=int, default=1024,
                        help="campaign counts from which the DKL step is timed once, compiled "
                             "ahead of time, from freshly initialised networks")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--skip", choices=["prediction", "dkl"], default=None)
    parser.add_argument("--attempts", type=int, default=6, help="tries of (a), see above")
    parser.add_argument("--child-timeout", type=float, default=240.0,
                        help="seconds after which an attempt of (a) counts as wedged")
    args = parser.parse_args()
    if args.quick:
        args.datasets, args.campaigns, args.repeats, args.dkl_steps = 256, [1, 4], 1, 5

    device = jax.devices()[0]
    meta = {
        "device": f"{device.platform}: {device.device_kind}",
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "torch": importlib.metadata.version("torch"),
        "repeats": args.repeats,
        "timing": f"best of repeats after one warm-up call (compile excluded); for "
                  f"{args.single_run_from} or more DKL campaigns one run, compiled ahead of "
                  f"time, from freshly initialised networks (the same work as a warm step)",
        "sizes_reduced": bool(args.quick),
    }  # fmt: skip
    out = {"meta": meta}
    lines = ["# Surrogates: stemjax against GPJax and GPyTorch (same machine, same run)", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items()]
    if args.skip != "prediction":
        print("(a) prediction for many GPs", flush=True)
        p_meta, p_rows = prediction_in_child(args)
        out["prediction"] = {"meta": p_meta, "rows": p_rows}
        lines += ["", "## (a) Prediction, many independent GPs", ""]
        lines += [f"- {k}: {v}" for k, v in p_meta.items()]
        lines += ["", "| method | seconds | datasets/s | stemjax speed-up |", "|---|---:|---:|---:|"]
        lines += [
            f"| {r['method']} | {r['seconds']:.3f} | {r['datasets_per_s']:.0f} | "
            f"{r['stemjax_speedup']:.1f}× |"
            for r in p_rows
        ]
    if args.skip != "dkl" and PFM.exists():
        print("(b) DKL refit + predict on the PFM patches", flush=True)
        d_meta, d_rows = dkl_benchmark(args)
        out["dkl"] = {"meta": d_meta, "rows": d_rows}
        lines += ["", "## (b) DKL refit-and-predict step, PFM patches", ""]
        lines += [f"- {k}: {v}" for k, v in d_meta.items()]
        lines += [
            "",
            "| method | campaigns | chunk | seconds | s per campaign | per-campaign speed-up vs "
            "GPyTorch (same step) | vs GPyTorch (papers' setting) |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {r['method']} | {r['campaigns']} | {r['chunk']} | {r['seconds']:.3f} | "
            f"{r['seconds_per_campaign']:.4f} | {r['speedup_vs_gpytorch_same_step']:.2f}× | "
            f"{r['speedup_vs_gpytorch_papers_setting']:.2f}× |"
            for r in d_rows
        ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "surrogates.json").write_text(json.dumps(out, indent=2))
    (RESULTS / "surrogates.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
