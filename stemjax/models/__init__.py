"""Surrogate models: masked exact GPs, deep-kernel GPs, Thompson sampling, fully Bayesian GPs.

Every model is a pure function of equinox pytrees (:class:`GPParams`, :class:`GPData`), so one
campaign's code runs for thousands of campaigns under ``jax.vmap``.
"""

from stemjax.models.bayesian import predict_averaged, sample_hyperparameters
from stemjax.models.dkl import ConvFeatures, MLPFeatures, init_dkl
from stemjax.models.fit import FitResult, fit
from stemjax.models.gp import (
    ConditionedGP,
    GPData,
    GPParams,
    append,
    condition,
    init_params,
    log_marginal_likelihood,
    pad_data,
    predict,
    predict_covariance,
)
from stemjax.models.kernels import KINDS, Kernel
from stemjax.models.vae import VAE, decode, elbo, encode, init_vae, train_vae
from stemjax.models.thompson import (
    PathwiseSample,
    pathwise_sample,
    sample_posterior,
    thompson_samples,
)

__all__ = [
    "KINDS",
    "ConditionedGP",
    "ConvFeatures",
    "FitResult",
    "GPData",
    "GPParams",
    "Kernel",
    "MLPFeatures",
    "PathwiseSample",
    "append",
    "condition",
    "fit",
    "init_dkl",
    "init_params",
    "log_marginal_likelihood",
    "pad_data",
    "pathwise_sample",
    "predict",
    "predict_averaged",
    "predict_covariance",
    "sample_hyperparameters",
    "sample_posterior",
    "thompson_samples",
    "train_vae",
    "VAE",
    "decode",
    "elbo",
    "encode",
    "init_vae",
]
