"""The masked exact Gaussian process: data in fixed-capacity buffers, hyperparameters, log
marginal likelihood and prediction.

Model (Rasmussen & Williams 2006, ch. 2): y = f(x) + ε, f ~ GP(c, k), ε ~ N(0, σ²), with a
constant mean c and a :class:`~stemjax.models.kernels.Kernel` k. With K = k(X, X) + σ²I,
L = chol(K) and α = K⁻¹(y − c):

    log p(y | X) = −½ (y − c)ᵀα − Σᵢ log Lᵢᵢ − (n/2) log 2π              (R&W eq. 2.30)
    μ(x*)  = c + k(x*, X) α                                              (R&W eq. 2.25)
    σ²(x*) = k(x*, x*) − ‖L⁻¹ k(X, x*)‖²                                 (R&W eq. 2.26)

**Masks.** Training data live in arrays of a fixed capacity n with a boolean mask, so datasets
of different sizes stack under ``vmap``. Rows and columns of padded points are replaced by those
of the identity and their targets by 0: the padded block then adds nothing to the quadratic
form or to log det K, and only the valid count enters the 2π term, so every quantity equals
that of the unpadded data (the Cholesky only ever adds exact zeros).

**Prediction** never forms the m × m candidate covariance unless asked
(:func:`predict_covariance`): the variances are row norms of k(x*, X) L⁻ᵀ.

**float32.** Inputs (or learned features) are centred on the mean of the valid training points
before scaling (stationary kernels are shift invariant), and a jitter of 100 ε s² (ε the dtype's
machine epsilon: 1.2·10⁻⁵ s² in float32, 2·10⁻¹⁴ s² in float64) is added to the diagonal
before the Cholesky factorisation.

**Features.** ``GPParams.features`` is ``None`` for an exact GP on the raw inputs (flattened, so
image patches work) or an equinox module mapping a batch of inputs to (n, q) features, which
makes the model a deep-kernel GP (see :mod:`stemjax.models.dkl`).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float

from stemjax._validation import check_finite, check_positive, is_concrete
from stemjax.models._checks import check_candidates, check_data_arrays, check_unbatched
from stemjax.models.kernels import Kernel, _raw, check_kind, float_dtype, softplus
from stemjax.posterior import Posterior

_LOG_2PI = float(np.log(2.0 * np.pi))


def jitter(dtype, variance: ArrayLike) -> Array:
    """Diagonal jitter for a Cholesky of a covariance of scale ``variance``: 100 ε variance."""
    return 100.0 * jnp.finfo(dtype).eps * variance


class GPData(eqx.Module):
    """Training data of one campaign (or a stack of campaigns) in a fixed-capacity buffer.

    Args:
        x: (n, *d) inputs: vectors (n, d) or image patches (n, h, w); a stack of campaigns adds
            leading axes, e.g. (B, n, d).
        y: (n,) targets (or (B, n)); finite where ``mask`` is true.
        mask: (n,) bool, true for real observations; default all true. Each campaign needs at
            least one true entry.

    Targets of padded points are stored as 0; their inputs are ignored.
    """

    x: Float[Array, "n *d"]
    y: Float[Array, " n"]
    mask: Bool[Array, " n"]

    def __init__(self, x: ArrayLike, y: ArrayLike, mask: ArrayLike | None = None):
        xp = np if is_concrete((x, y, mask)) else jnp  # NumPy: no compiles for concrete data
        x, y = xp.asarray(x), xp.asarray(y)
        dtype = float_dtype(x, y)
        mask = xp.ones(y.shape, bool) if mask is None else xp.asarray(mask)
        if mask.dtype != bool:
            raise ValueError(f"mask must be boolean; got dtype {mask.dtype}")
        check_data_arrays(x, y, mask)
        self.x = jnp.asarray(x, dtype)
        self.y = jnp.asarray(xp.where(mask, y, 0.0), dtype)
        self.mask = jnp.asarray(mask)

    @property
    def capacity(self) -> int:
        """n, the number of slots."""
        return self.y.shape[-1]

    @property
    def count(self) -> Array:
        """Number of real observations (int array; (B,) for a stack)."""
        return jnp.sum(self.mask, axis=-1)


def pad_data(x: ArrayLike, y: ArrayLike, capacity: int) -> GPData:
    """``GPData`` of ``capacity`` slots holding the n ≤ capacity points (x (n, *d), y (n,))."""
    xp = np if is_concrete((x, y)) else jnp
    x, y = xp.asarray(x), xp.asarray(y)
    if y.ndim != 1 or x.shape[:1] != y.shape:
        raise ValueError(f"x must be (n, ...) and y (n,); got x {x.shape} and y {y.shape}")
    n = y.shape[0]
    if not isinstance(capacity, (int, np.integer)) or capacity < max(n, 1):
        raise ValueError(f"capacity must be an integer >= n = {n} (and >= 1); got {capacity!r}")
    pad = capacity - n
    return GPData(
        xp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1)),
        xp.pad(y, (0, pad)),
        np.arange(capacity) < n,
    )


def append(data: GPData, x: ArrayLike, y: ArrayLike) -> GPData:
    """``data`` with one more observation (x (*d,), y scalar) in its first free slot.

    Works under ``jit``/``vmap``; raises (an equinox runtime error under ``jit``) when full.
    """
    x, y = jnp.asarray(x, data.x.dtype), jnp.asarray(y, data.y.dtype)
    if x.shape != data.x.shape[1:] or y.shape != ():
        raise ValueError(
            f"x must have shape {data.x.shape[1:]} and y be a scalar; got {x.shape}, {y.shape}"
        )
    check_finite("y", y)
    check_finite("x", x)
    slot = jnp.argmin(data.mask)
    full = jnp.all(data.mask)
    slot = eqx.error_if(slot, full, "append: the data buffer is full (no free slot)")
    new = eqx.tree_at(
        lambda d: (d.x, d.y, d.mask),
        data,
        (data.x.at[slot].set(x), data.y.at[slot].set(y), data.mask.at[slot].set(True)),
    )
    return new


class GPParams(eqx.Module):
    """Hyperparameters (and, for a deep kernel, the network) of one GP.

    Args:
        kernel: the covariance :class:`~stemjax.models.kernels.Kernel`.
        noise: observation-noise variance σ² > 0, in units of y².
        mean: constant prior mean c, in units of y.
        features: ``None`` (use the flattened inputs) or an equinox module mapping inputs
            (n, *d) to features (n, q); its arrays are trained with the hyperparameters.

    Attributes:
        raw_noise: softplus⁻¹(σ²).
    """

    kernel: Kernel
    raw_noise: Float[Array, ""]
    mean: Float[Array, ""]
    features: eqx.Module | None = None

    def __init__(
        self,
        kernel: Kernel,
        noise: Float[ArrayLike, ""] = 0.1,
        mean: Float[ArrayLike, ""] = 0.0,
        features: eqx.Module | None = None,
    ):
        if not isinstance(kernel, Kernel):
            raise TypeError(f"kernel must be a stemjax.models.Kernel; got {type(kernel)!r}")
        check_positive("noise", noise)
        check_finite("mean", mean)
        dtype = kernel.raw_variance.dtype
        self.kernel = kernel
        self.raw_noise = _raw(noise, dtype)
        self.mean = jnp.asarray(mean, dtype)
        self.features = features

    @property
    def noise(self) -> Float[Array, ""]:
        """σ², the observation-noise variance."""
        return softplus(self.raw_noise)


def features_of(params: GPParams, x: Float[Array, "n *d"]) -> Float[Array, "n q"]:
    """The kernel's inputs: ``params.features(x)``, or x flattened to (n, q)."""
    if params.features is None:
        return x.reshape(x.shape[0], -1)
    return params.features(x)


def _masked_mean(v: Array, mask: Array) -> Array:
    w = mask.astype(v.dtype)
    return jnp.tensordot(w, v, axes=(0, 0)) / jnp.maximum(jnp.sum(w), 1.0)


def _masked_inputs(data: GPData) -> Array:
    """x with padded rows set to 0 (garbage there must not reach a gradient as NaN)."""
    m = data.mask.reshape(data.mask.shape + (1,) * (data.x.ndim - 1))
    return jnp.where(m, data.x, 0.0)


def init_params(
    data: GPData,
    kind: str = "rbf",
    *,
    ard: bool = True,
    features: eqx.Module | None = None,
    noise_fraction: float = 0.1,
) -> GPParams:
    """Starting hyperparameters from one campaign's data (works under ``vmap``).

    c = mean of the valid y; s² = their variance (1 when it is 0); σ² = ``noise_fraction`` s²;
    ℓⱼ = √q × the spread of feature j over the valid points (so that typical pairs sit at r ≈ 1),
    1 where that spread is 0. With ``ard=False`` one lengthscale, the root mean square of those.

    Args:
        data: one campaign's :class:`GPData` (y of shape (n,)).
        kind: kernel family (see :data:`~stemjax.models.kernels.KINDS`).
        ard: one lengthscale per feature (default) or a single one.
        features: optional feature network (deep kernel); ℓ is then set on its outputs.
        noise_fraction: σ²/s² at the start, > 0.
    """
    check_unbatched(data)
    check_positive("noise_fraction", noise_fraction)
    check_kind(kind)
    return _init_params(data, kind, ard, features, float(noise_fraction))


@eqx.filter_jit
def _init_params(data, kind, ard, features, noise_fraction):
    dtype = data.y.dtype
    mask = data.mask
    f = features_of(GPParams(Kernel(kind, dtype=dtype), features=features), _masked_inputs(data))
    f = f.astype(dtype)
    q = f.shape[-1]
    f_mean = _masked_mean(f, mask)
    spread = jnp.sqrt(_masked_mean((f - f_mean) ** 2, mask))
    if features is not None:  # latents are standardised in the kernel (see _condition)
        spread = jnp.ones_like(spread)
    lengthscale = jnp.where(spread > 0, jnp.sqrt(q) * spread, 1.0)
    if not ard:
        lengthscale = jnp.sqrt(jnp.mean(lengthscale**2))
    y_mean = _masked_mean(data.y, mask)
    y_var = _masked_mean((data.y - y_mean) ** 2, mask)
    variance = jnp.where(y_var > 0, y_var, 1.0)
    return GPParams(
        Kernel(kind, lengthscale, variance, dtype=dtype),
        noise=noise_fraction * variance,
        mean=y_mean,
        features=features,
    )


class ConditionedGP(eqx.Module):
    """A GP conditioned on one campaign's data: the factorisation, reused by every query.

    Build with :func:`condition`. Attributes: ``params``; ``centre`` (q,) feature centre;
    ``z`` (n, q) centred training features divided by ℓ; ``mask`` (n,); ``chol`` (n, n) lower
    Cholesky factor L of the masked K; ``chol_inv`` (n, n) L⁻¹; ``alpha`` (n,) = K⁻¹(y − c)
    (0 at padded points); ``log_marginal_likelihood`` () log p(y | X) of the valid points.
    """

    params: GPParams
    centre: Float[Array, " q"]
    spread: Float[Array, " q"]
    z: Float[Array, "n q"]
    mask: Bool[Array, " n"]
    chol: Float[Array, "n n"]
    chol_inv: Float[Array, "n n"]
    alpha: Float[Array, " n"]
    log_marginal_likelihood: Float[Array, ""]

    def scaled(self, x: Float[Array, "m *d"]) -> Float[Array, "m q"]:
        """(features(x) − centre) / ℓ for inputs x (m, *d)."""
        f = features_of(self.params, x).astype(self.z.dtype)
        return self.params.kernel.scale((f - self.centre) / self.spread)

    def cross(self, x: Float[Array, "m *d"]) -> Float[Array, "m n"]:
        """k(x, X) with the columns of padded points set to 0, (m, n)."""
        ks = self.params.kernel.from_scaled(self.scaled(x), self.z)
        return jnp.where(self.mask[None, :], ks, 0.0)

    @eqx.filter_jit
    def predict(self, x: Float[Array, "m *d"], *, observed: bool = False) -> Posterior:
        """Mean and diagonal variance at candidates x (m, *d); ``observed`` adds σ²."""
        # padded points: α is 0 there and L⁻¹'s columns are masked, so k(x, X) needs no mask
        ks = self.params.kernel.from_scaled(self.scaled(x), self.z)
        mean = self.params.mean + ks @ self.alpha
        v = ks @ jnp.where(self.mask[:, None], self.chol_inv.T, 0.0)  # rows: L⁻¹ k(X, x*)
        var = jnp.maximum(self.params.kernel.variance - jnp.sum(v * v, axis=-1), 0.0)
        if observed:
            var = var + self.params.noise
        return Posterior(mean=mean, variance=var)

    @eqx.filter_jit
    def covariance(self, x: Float[Array, "m *d"], *, observed: bool = False) -> Array:
        """Joint posterior covariance (m, m) at candidates x (m, *d); ``observed`` adds σ²I."""
        z = self.scaled(x)
        kss = self.params.kernel.from_scaled(z, z)
        kss = jnp.where(jnp.eye(z.shape[0], dtype=bool), self.params.kernel.variance, kss)
        v = self.cross(x) @ self.chol_inv.T
        cov = kss - v @ v.T
        cov = 0.5 * (cov + cov.T)
        if observed:
            cov = cov + self.params.noise * jnp.eye(z.shape[0], dtype=cov.dtype)
        return cov


def _triangular_inverse(chol: Float[Array, "n n"]) -> Float[Array, "n n"]:
    """L⁻¹ of a lower-triangular L."""
    eye = jnp.eye(chol.shape[0], dtype=chol.dtype)
    return jsl.solve_triangular(chol, eye, lower=True)


# One LAPACK chain per factorisation. The factor L and L⁻¹ are computed once and everything
# else (α, K⁻¹, the variances) follows by matrix products: jaxlib 0.10's batched LAPACK kernels
# on CPU fan out into XLA's intra-op thread pool and wait, and two such calls that XLA runs
# concurrently (e.g. two independent triangular solves under vmap) can deadlock a small pool.
@jax.custom_jvp
def _gaussian_log_density(k, r, chol, chol_inv):
    """−½ rᵀK⁻¹r − ½ log det K, given L = chol(K) and L⁻¹ (without the 2π term).

    The derivative is written out in K and r, d = ½ αᵀ dK α − ½ tr(K⁻¹ dK) − αᵀ dr with
    α = K⁻¹r (R&W eq. 5.9); ``chol`` and ``chol_inv`` are helpers computed from ``k`` and carry
    no derivative of their own. Higher derivatives follow through the helpers' dependence on K.
    """
    alpha = chol_inv.T @ (chol_inv @ r)
    return -0.5 * jnp.dot(r, alpha) - jnp.sum(jnp.log(jnp.diagonal(chol)))


@_gaussian_log_density.defjvp
def _gaussian_log_density_jvp(primals, tangents):
    k, r, chol, chol_inv = primals
    dk, dr, _, _ = tangents
    alpha = chol_inv.T @ (chol_inv @ r)
    k_inv = chol_inv.T @ chol_inv
    value = -0.5 * jnp.dot(r, alpha) - jnp.sum(jnp.log(jnp.diagonal(chol)))
    tangent = 0.5 * alpha @ dk @ alpha - 0.5 * jnp.sum(k_inv * dk) - jnp.dot(alpha, dr)
    return value, tangent


def _condition(params: GPParams, data: GPData) -> ConditionedGP:
    mask = data.mask
    f = features_of(params, _masked_inputs(data))
    dtype = float_dtype(f, data.y, params.kernel.raw_variance)
    f = f.astype(dtype)
    centre = _masked_mean(f, mask)
    if params.features is None:
        spread = jnp.ones_like(centre)
    else:  # learned latents are standardised on the training points (like ScaleToBounds)
        spread = jnp.sqrt(_masked_mean((f - centre) ** 2, mask) + jnp.finfo(dtype).tiny)
    kernel = params.kernel
    z = kernel.scale((f - centre) / spread)
    n = mask.shape[0]
    eye = jnp.eye(n, dtype=bool)
    both = mask[:, None] & mask[None, :]
    k = kernel.from_scaled(z, z)
    k = jnp.where(both & ~eye, k, 0.0)
    diag = jnp.where(mask, kernel.variance + params.noise + jitter(dtype, kernel.variance), 1.0)
    k = k + jnp.diag(diag)
    chol = jnp.linalg.cholesky(k)
    chol_inv = _triangular_inverse(chol)
    resid = jnp.where(mask, data.y.astype(dtype) - params.mean, 0.0)
    alpha = chol_inv.T @ (chol_inv @ resid)
    n_valid = jnp.sum(mask).astype(dtype)
    lml = _gaussian_log_density(k, resid, chol, chol_inv) - 0.5 * n_valid * _LOG_2PI
    return ConditionedGP(params, centre, spread, z, mask, chol, chol_inv, alpha, lml)


def _check(params: GPParams, data: GPData) -> None:
    if not isinstance(params, GPParams):
        raise TypeError(f"params must be GPParams; got {type(params)!r}")
    if not isinstance(data, GPData):
        raise TypeError(f"data must be GPData; got {type(data)!r}")
    check_unbatched(data)
    if is_concrete(params.kernel):
        check_finite("params (kernel hyperparameters)", params.kernel.raw_lengthscale)
        check_finite("params (kernel hyperparameters)", params.kernel.raw_variance)


_condition_jit = eqx.filter_jit(_condition)


def condition(params: GPParams, data: GPData) -> ConditionedGP:
    """Factor K once for repeated predictions and sampling on one campaign's data."""
    _check(params, data)
    return _condition_jit(params, data)


@eqx.filter_jit
def _lml(params: GPParams, data: GPData) -> Array:
    return _condition(params, data).log_marginal_likelihood


def log_marginal_likelihood(params: GPParams, data: GPData) -> Float[Array, ""]:
    """log p(y | X, θ) of the valid points of one campaign (differentiable in ``params``)."""
    _check(params, data)
    return _lml(params, data)


@eqx.filter_jit
def _predict(params, data, candidates, observed):
    return _condition(params, data).predict(candidates, observed=observed)


def predict(
    params: GPParams, data: GPData, candidates: Float[ArrayLike, "m *d"], *, observed: bool = False
) -> Posterior:
    """Posterior mean and diagonal variance at m candidates, as a :class:`Posterior`.

    Args:
        params: hyperparameters (and feature network) of one GP.
        data: one campaign's :class:`GPData`.
        candidates: (m, *d) inputs, the per-point shape of ``data.x``.
        observed: the variance of a new observation (adds σ²) instead of the latent f.

    Returns:
        ``Posterior(mean (m,), variance (m,))``. ``jax.vmap`` over campaigns for many.
    """
    _check(params, data)
    candidates = jnp.asarray(candidates, data.x.dtype)
    check_candidates("candidates", candidates, data.x)
    return _predict(params, data, candidates, observed)


@eqx.filter_jit
def _predict_cov(params, data, candidates, observed):
    return _condition(params, data).covariance(candidates, observed=observed)


def predict_covariance(
    params: GPParams, data: GPData, candidates: Float[ArrayLike, "m *d"], *, observed: bool = False
) -> Float[Array, "m m"]:
    """Joint posterior covariance (m, m) at m candidates (only when it is needed)."""
    _check(params, data)
    candidates = jnp.asarray(candidates, data.x.dtype)
    check_candidates("candidates", candidates, data.x)
    return _predict_cov(params, data, candidates, observed)
