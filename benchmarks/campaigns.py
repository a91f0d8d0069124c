"""Campaign-step throughput: stemjax campaigns at once against a GPyTorch + BoTorch loop.

One campaign step on the real PFM world (1225 candidate patches of 16 × 16, paper 003) is:
refit the surrogate (``refit`` Adam steps, warm-started), predict the mean and variance of all
candidates, score them with expected improvement, measure the best unmeasured one and append
it. stemjax runs ``steps`` such steps for C campaigns in one compiled call (``vmap`` of a
``lax.scan``; DKL campaigns beyond ``--dkl-chunk`` as ``lax.map`` over vmapped chunks, which
bounds memory), after the seed fits; the timed call excludes compilation. The peer is the
paper's kind of loop for one campaign: a GPyTorch model (the same CNN deep kernel, or an exact
GP on the flattened patches) refitted with torch Adam, and BoTorch's analytic
``ExpectedImprovement`` over the candidates. The exact GP runs twice: on the raw 256 pixels
and, as in the sweep presets, on the first 16 principal components (both libraries get the
same projected inputs). Reported: campaign-steps per second, the
per-campaign-step speed-up, and the memory per campaign (XLA's buffer sizes of the compiled
call divided by C).

Writes ``benchmarks/results/campaigns.json`` and ``campaigns.md``. Needs the bench extra:

    python benchmarks/campaigns.py [--quick] [--gp-campaigns 1 16 256 1024] [--dkl-campaigns 1 16 256]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from stemjax.campaign import Surrogate, init_state, make_policy, metric_labels, random_seeds, step
from stemjax.worlds import pfm_world

RESULTS = Path(__file__).parent / "results"


def stemjax_rows(
    surrogate: Surrogate, campaigns: list[int], steps: int, chunk: int | None = None
) -> list[dict]:
    """Rows for C campaigns at once: ``vmap``, or ``lax.map`` over chunks of ``chunk`` vmapped
    campaigns when C is larger (bounded memory, as ``stemjax sweep`` runs them)."""
    world = pfm_world()
    labels = metric_labels(jax.random.key(0), world, feature_space=False)
    policy = make_policy("ei", surrogate)
    n_seeds = 10

    def start(keys):
        seeds = jax.vmap(lambda k: random_seeds(k, world.size, n_seeds))(keys)
        return jax.vmap(lambda k, s: init_state(k, world, policy, steps, s))(keys, seeds)

    def advance(states):
        def one(state):
            return jax.lax.scan(lambda st, _: step(st, world, policy, labels), state, None,
                                length=steps)  # fmt: skip
        c = jax.tree.leaves(states)[0].shape[0]
        if chunk is None or c <= chunk:
            return jax.vmap(one)(states)
        return jax.lax.map(one, states, batch_size=chunk)

    rows = []
    for c in campaigns:
        keys = jax.random.split(jax.random.key(1), c)
        states = eqx.filter_jit(start)(keys)
        dynamic, static = eqx.partition(states, eqx.is_array)
        compiled = jax.jit(lambda d: advance(eqx.combine(d, static))).lower(dynamic).compile()
        mem = compiled.memory_analysis()
        total = None
        if mem is not None:
            total = (mem.temp_size_in_bytes + mem.argument_size_in_bytes
                     + mem.output_size_in_bytes)  # fmt: skip
        begin = time.perf_counter()
        jax.block_until_ready(compiled(dynamic))
        seconds = time.perf_counter() - begin
        rows.append({
            "library": "stemjax", "surrogate": _label(surrogate.model, surrogate.principal_components),
            "campaigns": c, "chunk": min(c, chunk or c), "steps": steps,
            "seconds": seconds, "campaign_steps_per_s": c * steps / seconds,
            "memory_per_campaign_MB": None if total is None else total / c / 2**20,
        })  # fmt: skip
        print(f"  stemjax {surrogate.model}, {c} campaigns: {seconds:.2f} s, "
              f"{c * steps / seconds:.1f} campaign-steps/s", flush=True)  # fmt: skip
    return rows


def _label(model_kind: str, principal_components: int) -> str:
    return model_kind + (f" on {principal_components} PCs" if principal_components else "")


def torch_row(model_kind: str, refit: int, steps: int, lr: float, principal_components: int = 0
              ) -> dict:  # fmt: skip
    import gpytorch
    import torch
    from torch_cnn import PapersCNN
    from botorch.acquisition.analytic import ExpectedImprovement
    from botorch.models.gpytorch import GPyTorchModel

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    world = pfm_world()
    inputs = Surrogate(principal_components=principal_components).inputs(world.inputs)
    patches = torch.from_numpy(np.array(inputs).reshape(world.size, -1))
    targets = torch.from_numpy(np.asarray(world.targets))

    class Model(gpytorch.models.ExactGP, GPyTorchModel):
        _num_outputs = 1

        def __init__(self, x, y, likelihood):
            super().__init__(x, y, likelihood)
            self.features = PapersCNN() if model_kind == "dkl" else None
            self.mean_module = gpytorch.means.ConstantMean()
            self.covar_module = gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel())

        def forward(self, x):
            z = self.features(x) if self.features is not None else x
            return gpytorch.distributions.MultivariateNormal(self.mean_module(z),
                                                             self.covar_module(z))  # fmt: skip

    rng = np.random.default_rng(0)
    chosen = list(rng.choice(world.size, 10, replace=False))
    likelihood = gpytorch.likelihoods.GaussianLikelihood()
    model = Model(patches[chosen], targets[chosen], likelihood)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def one_step():
        x, y = patches[chosen], targets[chosen]
        model.set_train_data(x, y, strict=False)
        model.train()
        likelihood.train()
        mll = gpytorch.mlls.ExactMarginalLogLikelihood(likelihood, model)
        for _ in range(refit):
            optimizer.zero_grad()
            (-mll(model(x), y)).backward()
            optimizer.step()
        model.eval()
        likelihood.eval()
        with torch.no_grad():
            ei = ExpectedImprovement(model, best_f=y.max())(patches[:, None, :])
            ei[chosen] = -torch.inf
            chosen.append(int(torch.argmax(ei)))

    one_step()  # warm-up
    seconds = float("inf")
    for _ in range(3):  # best of 3 runs of `steps` steps (torch timings vary from run to run)
        del chosen[10:]
        begin = time.perf_counter()
        for _ in range(steps):
            one_step()
        seconds = min(seconds, time.perf_counter() - begin)
    print(f"  GPyTorch + BoTorch {model_kind}, 1 campaign: {seconds / steps:.3f} s per step",
          flush=True)  # fmt: skip
    return {"library": "GPyTorch + BoTorch", "surrogate": _label(model_kind, principal_components),
            "campaigns": 1, "chunk": 1,
            "steps": steps, "seconds": seconds, "campaign_steps_per_s": steps / seconds,
            "memory_per_campaign_MB": None}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gp-campaigns", type=int, nargs="*", default=[1, 16, 256, 1024])
    parser.add_argument("--dkl-campaigns", type=int, nargs="*", default=[1, 16, 256])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per campaign")
    parser.add_argument("--dkl-steps", type=int, default=5, help="timed steps for DKL")
    parser.add_argument("--refit", type=int, default=10, help="Adam steps per refit")
    parser.add_argument("--dkl-chunk", type=int, default=64,
                        help="DKL campaigns vmapped at once (about 90 MB each on the PFM world)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.gp_campaigns, args.dkl_campaigns, args.steps, args.dkl_steps = [1, 16], [1, 4], 3, 2

    device = jax.devices()[0]
    meta = {
        "world": "real PFM (paper 003): 1225 candidates, 16×16 patches, 10 random seeds",
        "step": f"refit ({args.refit} Adam steps, warm start) → predict 1225 → EI → measure",
        "stemjax": "jit(vmap(lax.scan(step))) after the seed fits, compiled ahead of time; DKL "
                   f"campaigns beyond {args.dkl_chunk} run as lax.map over chunks of that many",
        "peer": "one campaign, GPyTorch + torch Adam + BoTorch analytic EI; best of 3 runs",
        "device": f"{device.platform}: {device.device_kind}", "cpu_count": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(), "jax": jax.__version__,
        "torch": importlib.metadata.version("torch"), "quick": args.quick,
    }  # fmt: skip
    rows = []
    for kind, pcs, campaigns, steps, lr in (
        ("gp", 0, args.gp_campaigns, args.steps, 0.05),
        ("gp", 16, args.gp_campaigns, args.steps, 0.05),  # the sweep presets' surrogate
        ("dkl", 0, args.dkl_campaigns, args.dkl_steps, 0.01),
    ):
        if not campaigns:
            continue
        print(f"{_label(kind, pcs)}:", flush=True)
        surrogate = Surrogate(model=kind, fit_steps=20, refit_steps=args.refit, learning_rate=lr,
                              principal_components=pcs)  # fmt: skip
        ours = stemjax_rows(surrogate, campaigns, steps, args.dkl_chunk if kind == "dkl" else None)
        peer = torch_row(kind, args.refit, steps, lr, pcs)
        for row in (*ours, peer):
            row["speedup_per_campaign_step"] = (
                row["campaign_steps_per_s"] / peer["campaign_steps_per_s"]
            )
        rows += [*ours, peer]
    lines = ["# Campaign steps: stemjax against GPyTorch + BoTorch (same machine, same run)", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items()]
    lines += ["", "| library | surrogate | campaigns | vmapped at once | timed steps | seconds | "
              "campaign-steps/s | speed-up per campaign-step | memory per campaign (MB) |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        mem = "–" if r["memory_per_campaign_MB"] is None else f"{r['memory_per_campaign_MB']:.2f}"
        lines.append(
            f"| {r['library']} | {r['surrogate']} | {r['campaigns']} | {r['chunk']} | "
            f"{r['steps']} | "
            f"{r['seconds']:.2f} | {r['campaign_steps_per_s']:.1f} | "
            f"{r['speedup_per_campaign_step']:.1f}× | {mem} |"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "campaigns.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    (RESULTS / "campaigns.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
