"""Context-aware defect classification (paper 002): image-only versus context-conditioned.

Trains two deep ensembles on patches streamed from the forward model
(:func:`stemjax.perception.standard_domains` ``"train"``: MoS2, MoSe2, WSe2 with V, Cr, Mn, Fe,
Nb, Mo, W, Re dopants at 60 keV HAADF, 200 keV HAADF and 200 keV MAADF), one that sees only the
patch and one conditioned on composition, beam energy, probe and detector angles and dose;
fits the softmax temperature of each on held-out simulations, and a numpyro Bayesian last layer
on the context model. Evaluates on fresh simulations of the training domain, on the
"ambiguous" set (pairs of cases whose patches cannot be told apart at 2·10⁴ e⁻/Å²: d′ ≤ 1), on
an unseen material (WS2) and on an unseen beam energy (80 keV).

Writes ``benchmarks/results/defect_classifier.json`` and ``.md`` and the context ensemble's
weights ``defect_classifier_context.eqx`` (read by ``benchmarks/real_mos2_defects.py``):

    python benchmarks/defect_classifier.py [--steps 1000] [--members 4] [--test 400]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import jax
import numpy as np

from stemjax.metrics import expected_calibration_error
from stemjax.perception import (
    CLASSES,
    ambiguous_cases,
    compare,
    evaluate,
    fit_last_layer,
    fit_temperature,
    init_ensemble,
    predict,
    predict_last_layer,
    sample_cases,
    sample_patches,
    save_ensemble,
    standard_domains,
    train_ensemble,
)

RESULTS = Path(__file__).parent / "results"
AMBIGUOUS_DOSE = 2e4  # e⁻/Å², the lowest training dose


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="training steps per ensemble")
    parser.add_argument("--members", type=int, default=4, help="networks per ensemble")
    parser.add_argument("--batch", type=int, default=32, help="patches per imaging per step")
    parser.add_argument("--test", type=int, default=400, help="test patches per imaging")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    domains = standard_domains()
    train = domains["train"]
    key = jax.random.key(2026)
    k_val, k_bll, k_test, k_amb, k_mat, k_ctx, k_train, k_fit = jax.random.split(key, 8)
    pairs = ambiguous_cases(train, AMBIGUOUS_DOSE)
    ambiguous = sorted({p.a for p in pairs} | {p.b for p in pairs})
    splits = {
        "test": sample_patches(k_test, train, args.test),
        "ambiguous": sample_cases(k_amb, train, ambiguous, max(1, 3 * args.test // len(ambiguous)),
                                  dose=AMBIGUOUS_DOSE),  # fmt: skip
        "unseen_material": sample_patches(k_mat, domains["unseen_material"], args.test),
        "unseen_context": sample_patches(k_ctx, domains["unseen_context"], args.test),
    }
    validation = sample_patches(k_val, train, args.test)

    models, timings, posteriors, calibration = {}, {}, {}, {}
    for name, use_context in (("context", True), ("image", False)):
        t0 = time.perf_counter()
        ensemble = init_ensemble(jax.random.fold_in(k_train, use_context), train, args.members,
                                 use_context)  # fmt: skip
        ensemble, log = train_ensemble(jax.random.fold_in(k_train, 10 + use_context), ensemble,
                                       train, args.steps, args.batch)  # fmt: skip
        timings[name] = time.perf_counter() - t0
        raw = predict(ensemble, validation.images, validation.context)
        raw_test = predict(ensemble, splits["test"].images, splits["test"].context)
        ensemble = fit_temperature(ensemble, validation)
        scaled_test = predict(ensemble, splits["test"].images, splits["test"].context)
        calibration[name] = {
            "temperature": float(np.exp(ensemble.log_temperature)),
            "ece_validation_before": float(expected_calibration_error(raw.probs, validation.labels)),
            "ece_test_before": float(expected_calibration_error(raw_test.probs,
                                                                splits["test"].labels)),
            "ece_test_after": float(expected_calibration_error(scaled_test.probs,
                                                               splits["test"].labels)),
            "final_training_loss": float(log.loss[-50:].mean()),
        }  # fmt: skip
        models[name] = ensemble
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the unseen splits are extrapolations by design
            posteriors[name] = {s: predict(ensemble, b.images, b.context) for s, b in splits.items()}

    save_ensemble(args.out / "defect_classifier_context.eqx", models["context"])
    t0 = time.perf_counter()
    head = fit_last_layer(k_fit, models["context"], sample_patches(k_bll, train, args.test))
    timings["bayesian_last_layer"] = time.perf_counter() - t0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        posteriors["last_layer"] = {
            s: predict_last_layer(jax.random.fold_in(k_fit, i), head, b.images, b.context)
            for i, (s, b) in enumerate(splits.items())
        }
    calibration["last_layer"] = {"ece_test": float(expected_calibration_error(
        posteriors["last_layer"]["test"].probs, splits["test"].labels))}  # fmt: skip

    results = {
        "settings": {**{k: v for k, v in vars(args).items() if k != "out"},
                     "ambiguous_dose": AMBIGUOUS_DOSE, "ambiguous_cases": len(ambiguous),
                     "ambiguous_pairs": len(pairs),
                     "split_sizes": {s: len(b) for s, b in splits.items()}},  # fmt: skip
        "timings_s": timings,
        "calibration": calibration,
        "scores": {m: {s: evaluate(p, splits[s]) for s, p in per.items()}
                   for m, per in posteriors.items()},  # fmt: skip
        "context_vs_image": {s: compare(posteriors["image"][s], posteriors["context"][s], b)
                             for s, b in splits.items()},  # fmt: skip
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "backend": jax.default_backend()},  # fmt: skip
        "total_s": time.perf_counter() - start,
    }
    (args.out / "defect_classifier.json").write_text(json.dumps(results, indent=2))
    (args.out / "defect_classifier.md").write_text(markdown(results, pairs))
    print(markdown(results, pairs))


def markdown(r: dict, pairs) -> str:
    s = r["settings"]
    lines = [
        "# Context-aware defect classification (paper 002)",
        "",
        f"`python benchmarks/defect_classifier.py --steps {s['steps']} --members "
        f"{s['members']} --batch {s['batch']} --test {s['test']}` on {r['machine']['cpus']} CPU "
        f"cores ({r['machine']['backend']}); total {r['total_s']:.0f} s. Training: context "
        f"ensemble {r['timings_s']['context']:.0f} s, image-only "
        f"{r['timings_s']['image']:.0f} s, Bayesian last layer "
        f"{r['timings_s']['bayesian_last_layer']:.0f} s (compilation included).",
        "",
        "## Accuracy, macro-F1, mean predictive entropy (nats) and ECE by split",
        "",
        "| model | split | n | accuracy | macro-F1 | entropy | ECE |",
        "|---|---|---|---|---|---|---|",
    ]
    for model, per in r["scores"].items():
        for split, score in per.items():
            o = score["overall"]
            lines.append(f"| {model} | {split} | {o['count']} | {o['accuracy']:.3f} | "
                         f"{o['macro_f1']:.3f} | {o['mean_entropy']:.3f} | {o['ece']:.3f} |")
    lines += [
        "",
        "## Context against image only",
        "",
        "| split | accuracy image | accuracy context | entropy image | entropy context | "
        "entropy reduction | Cohen's κ |",
        "|---|---|---|---|---|---|---|",
    ]
    for split, c in r["context_vs_image"].items():
        lines.append(f"| {split} | {c['accuracy_image_only']:.3f} | {c['accuracy_context']:.3f} "
                     f"| {c['entropy_image_only']:.3f} | {c['entropy_context']:.3f} | "
                     f"{100 * c['entropy_reduction']:.1f} % | {c['kappa']:.3f} |")
    lines += ["", "## Calibration (temperature scaling on held-out simulations)", "",
              "| model | T | ECE test before | ECE test after |", "|---|---|---|---|"]
    for model in ("context", "image"):
        c = r["calibration"][model]
        lines.append(f"| {model} | {c['temperature']:.3f} | {c['ece_test_before']:.4f} | "
                     f"{c['ece_test_after']:.4f} |")
    lines.append(f"| last layer (SVI) | – | – | {r['calibration']['last_layer']['ece_test']:.4f} |")
    lines += ["", "## Per imaging context and per host (context model, test split)", "",
              "| group | n | accuracy | macro-F1 | entropy | ECE |", "|---|---|---|---|---|---|"]
    for grouping in ("imaging", "host"):
        for name, g in r["scores"]["context"]["test"][grouping].items():
            lines.append(f"| {name} | {g['count']} | {g['accuracy']:.3f} | {g['macro_f1']:.3f} "
                         f"| {g['mean_entropy']:.3f} | {g['ece']:.3f} |")
    lines += ["", "## Per host, unseen material and unseen context (both models)", "",
              "| model | split | group | accuracy | entropy |", "|---|---|---|---|---|"]
    for model in ("context", "image"):
        for split in ("unseen_material", "unseen_context"):
            for grouping in ("host", "imaging"):
                for name, g in r["scores"][model][split][grouping].items():
                    lines.append(f"| {model} | {split} | {name} | {g['accuracy']:.3f} | "
                                 f"{g['mean_entropy']:.3f} |")
    lines += ["", f"## Ambiguous set: {s['ambiguous_pairs']} pairs of cases, d′ ≤ 1 at "
              f"{s['ambiguous_dose']:.0e} e⁻/Å²", "", "| case a | case b | d′ |", "|---|---|---|"]
    seen = set()
    for p in pairs:
        kind = (p.a[0], p.a[2], p.a[3], p.b[0], p.b[2], p.b[3])
        if kind in seen:
            continue
        seen.add(kind)
        lines.append(f"| {p.a[0]} {CLASSES[p.a[3]]} ({p.a[2]}) | {p.b[0]} {CLASSES[p.b[3]]} "
                     f"({p.b[2]}) | {p.separation:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
