"""Scores of defect classifiers on simulated patches: overall, per imaging context and per host,
and the comparison of an image-only with a context-conditioned model."""

from __future__ import annotations

import numpy as np

from stemjax.metrics import cohens_kappa, grouped_classification_report
from stemjax.perception.classifier import ClassPosterior
from stemjax.perception.patches import CLASSES, HOSTS, IMAGING_CONTEXTS, PatchBatch

_GROUPINGS = {"imaging": tuple(IMAGING_CONTEXTS), "host": HOSTS}


def evaluate(posterior: ClassPosterior, batch: PatchBatch, n_bins: int = 15) -> dict:
    """Accuracy, macro-F1, mean predictive entropy (nats), expected calibration error and
    confusion matrix of ``posterior`` on ``batch``: ``"overall"``, and per imaging context
    and per host (only the groups present in the batch), as plain Python numbers and lists."""
    labels = np.asarray(batch.labels)
    if posterior.probs.shape[0] != labels.shape[0]:
        raise ValueError(f"posterior must hold {labels.shape[0]} patches, one per patch of batch; "
                         f"got {posterior.probs.shape[0]}")  # fmt: skip
    out: dict = {}
    for grouping, names in _GROUPINGS.items():
        groups = np.asarray(getattr(batch, grouping))
        report = grouped_classification_report(
            posterior.probs, labels, groups, len(CLASSES), len(names), n_bins=n_bins
        )
        rows = {name: i for i, name in enumerate(names) if np.any(groups == i)}
        out[grouping] = {name: _row(report, i) for name, i in rows.items()}
        out.setdefault("overall", _row(report, len(names)))  # the same row in every grouping
    return out


def _row(report: dict, i: int) -> dict:
    return {key: (np.asarray(value[i]).tolist()) for key, value in report.items()}


def compare(image_only: ClassPosterior, with_context: ClassPosterior, batch: PatchBatch) -> dict:
    """How conditioning on context changes the predictions on ``batch``.

    Returns:
        dict with the mean predictive entropy of each model (nats), the relative entropy
        reduction 1 − H_context / H_image, both accuracies, and Cohen's κ between the two
        models' predicted classes.
    """
    h_image = float(np.mean(np.asarray(image_only.entropy)))
    h_context = float(np.mean(np.asarray(with_context.entropy)))
    labels = np.asarray(batch.labels)
    return {
        "entropy_image_only": h_image,
        "entropy_context": h_context,
        "entropy_reduction": 1.0 - h_context / h_image if h_image > 0 else float("nan"),
        "accuracy_image_only": float(np.mean(np.asarray(image_only.predicted) == labels)),
        "accuracy_context": float(np.mean(np.asarray(with_context.predicted) == labels)),
        "kappa": float(cohens_kappa(image_only.predicted, with_context.predicted, len(CLASSES))),
    }
