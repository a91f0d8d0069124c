"""Stationary covariance kernels with ARD lengthscales: RBF and Matérn 1/2, 3/2, 5/2.

k(x, x') = s² ρ(r),  r = ‖(x − x') / ℓ‖, with ℓ one lengthscale per input feature (ARD) or a
single shared one, and

    rbf       ρ = exp(−r²/2)
    matern12  ρ = exp(−r)
    matern32  ρ = (1 + √3 r) exp(−√3 r)
    matern52  ρ = (1 + √5 r + 5r²/3) exp(−√5 r)

(Rasmussen & Williams, *Gaussian Processes for Machine Learning*, 2006, eqs. 4.9 and 4.17). The
formulas are those of GPJax's ``RBF`` and ``Matern12/32/52``; stemjax evaluates whole matrices with
one matrix product instead of a double ``vmap`` over pairs, which is what makes thousands of
campaigns under ``vmap`` cheap (tests/models/test_kernels.py checks the two agree).

Lengthscales and the variance are stored unconstrained and mapped through softplus, so gradient
steps keep them positive.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from stemjax._validation import check_positive, is_concrete

KINDS: tuple[str, ...] = ("rbf", "matern12", "matern32", "matern52")
"""Names of the kernels :class:`Kernel` provides."""

_NU = {"matern12": 0.5, "matern32": 1.5, "matern52": 2.5}


def softplus(x: ArrayLike) -> Array:
    """log(1 + eˣ): unconstrained → positive."""
    return jax.nn.softplus(x)


def inverse_softplus(y: ArrayLike) -> Array:
    """The x with softplus(x) = y, for y > 0; accurate in float32 for tiny and large y."""
    y = jnp.asarray(y)
    return y + jnp.log(-jnp.expm1(-y))


def _raw(value, dtype) -> Array:
    """softplus⁻¹(value) as ``dtype``: in NumPy (float64) for concrete values, else traced."""
    if is_concrete(value):
        v = np.asarray(value, np.float64)
        return jnp.asarray(v + np.log(-np.expm1(-v)), dtype)
    return inverse_softplus(jnp.asarray(value, dtype))


def float_dtype(*values) -> jnp.dtype:
    """The float dtype of ``values`` (float32 unless x64 is on and a value is float64)."""
    return jnp.result_type(*values, float) if values else jnp.result_type(float)


def standard_normal(key: PRNGKeyArray, shape: tuple[int, ...], dtype=None) -> Array:
    """N(0, 1) draws of ``shape`` from one uniform draw by the Box–Muller transform.

    Same distribution as ``jax.random.normal`` (tails cut at about 5.8 σ in float32, where
    uniforms run out of resolution), but its compiled code is a fraction of the size, which
    matters on CPU where samplers are compiled once per shape.
    """
    dtype = dtype or float_dtype()
    size = math.prod(shape)
    half = (size + 1) // 2
    u = jax.random.uniform(key, (2, half), dtype)
    radius = jnp.sqrt(-2.0 * jnp.log1p(-u[0]))
    angle = 2.0 * jnp.pi * u[1]
    z = jnp.concatenate([radius * jnp.cos(angle), radius * jnp.sin(angle)])
    return z[:size].reshape(shape)


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    return kind


def _safe_sqrt(x: Array) -> Array:
    """√x with a finite gradient everywhere (0 at x ≤ 0)."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def squared_distances(a: Float[Array, "n q"], b: Float[Array, "m q"]) -> Float[Array, "n m"]:
    """‖aᵢ − bⱼ‖², (n, m), ≥ 0.

    With few features (q ≤ 4: DKL latents) the differences are squared directly, which is exact;
    with more, |a|² + |b|² − 2a·b is one matrix product. Callers centre the inputs first so the
    expansion loses little in float32.
    """
    if a.shape[-1] <= 4:
        return jnp.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1)
    aa = jnp.sum(a * a, axis=-1)[:, None]
    bb = jnp.sum(b * b, axis=-1)[None, :]
    return jnp.maximum(aa + bb - 2.0 * (a @ b.T), 0.0)


def correlation(kind: str, r2: Array) -> Array:
    """ρ(r) of ``kind`` from the squared scaled distance r² (any shape)."""
    if kind == "rbf":
        return jnp.exp(-0.5 * r2)
    r = _safe_sqrt(r2)
    if kind == "matern12":
        return jnp.exp(-r)
    if kind == "matern32":
        s = np.sqrt(3.0) * r
        return (1.0 + s) * jnp.exp(-s)
    if kind == "matern52":
        s = np.sqrt(5.0) * r
        return (1.0 + s + s * s / 3.0) * jnp.exp(-s)
    raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")


class Kernel(eqx.Module):
    """A stationary kernel: its family, lengthscales ℓ and variance s².

    Args:
        kind: one of ``"rbf"``, ``"matern12"``, ``"matern32"``, ``"matern52"``.
        lengthscale: ℓ > 0, in the units of the (feature) inputs; a scalar (isotropic) or one
            per feature (ARD), shape (q,).
        variance: s² > 0, in units of the output squared.
        dtype: float dtype of the stored parameters (default: JAX's default float).

    Attributes:
        raw_lengthscale: softplus⁻¹(ℓ), () or (q,).
        raw_variance: softplus⁻¹(s²), ().
    """

    raw_lengthscale: Float[Array, "*q"]
    raw_variance: Float[Array, ""]
    kind: str = eqx.field(static=True, default="rbf")

    def __init__(
        self,
        kind: str = "rbf",
        lengthscale: Float[ArrayLike, "*q"] = 1.0,
        variance: Float[ArrayLike, ""] = 1.0,
        *,
        dtype=None,
    ):
        self.kind = check_kind(kind)
        check_positive("lengthscale", lengthscale)
        check_positive("variance", variance)
        dtype = dtype or float_dtype()
        if np.ndim(lengthscale) > 1:
            raise ValueError(
                f"lengthscale must be a scalar or a vector (q,); got shape {np.shape(lengthscale)}"
            )
        self.raw_lengthscale = _raw(lengthscale, dtype)
        self.raw_variance = _raw(variance, dtype)

    @property
    def lengthscale(self) -> Float[Array, "*q"]:
        """ℓ, () or (q,)."""
        return softplus(self.raw_lengthscale)

    @property
    def variance(self) -> Float[Array, ""]:
        """s²."""
        return softplus(self.raw_variance)

    def scale(self, x: Float[Array, "n q"]) -> Float[Array, "n q"]:
        """x / ℓ."""
        return x / self.lengthscale

    def from_scaled(self, a: Float[Array, "n q"], b: Float[Array, "m q"]) -> Float[Array, "n m"]:
        """k between inputs already divided by ℓ, (n, m)."""
        return self.variance * correlation(self.kind, squared_distances(a, b))

    def __call__(self, x1: Float[Array, "n q"], x2: Float[Array, "m q"]) -> Float[Array, "n m"]:
        """Cross-covariance k(x1, x2), (n, m); inputs (n, q) and (m, q)."""
        centre = jnp.mean(x1, axis=0)
        return self.from_scaled(self.scale(x1 - centre), self.scale(x2 - centre))

    def gram(self, x: Float[Array, "n q"]) -> Float[Array, "n n"]:
        """k(x, x), (n, n), with the diagonal exactly s²."""
        k = self(x, x)
        return jnp.where(jnp.eye(x.shape[0], dtype=bool), self.variance, k)

    def diagonal(self, x: Float[Array, "n q"]) -> Float[Array, " n"]:
        """k(xᵢ, xᵢ) = s², (n,)."""
        return jnp.broadcast_to(self.variance, x.shape[:1])

    def spectral_frequencies(
        self, key: PRNGKeyArray, shape: tuple[int, ...], q: int
    ) -> Float[Array, "*shape q"]:
        """Draws ω from the kernel's spectral measure at unit lengthscale, shape (*shape, q).

        RBF: ω ~ N(0, I). Matérn ν: a multivariate Student t with 2ν degrees of freedom,
        ω = g·√(2ν/u), g ~ N(0, I), u ~ χ²(2ν) (a sum of 2ν squared normals) (Rahimi & Recht, NeurIPS 2007; the Matérn
        spectral density ∝ (2ν + ‖ω‖²)^−(ν+q/2), Rasmussen & Williams eq. 4.15). Then
        E[cos(ω·(x − x')/ℓ)] = ρ(‖(x − x')/ℓ‖).
        """
        g = standard_normal(key, (*shape, q + self.spectral_extra), self.raw_variance.dtype)
        return self.frequencies_from_normals(g, q)

    @property
    def spectral_extra(self) -> int:
        """Normals per frequency beyond q: 2ν for a Matérn kernel (its χ² draw), 0 for RBF."""
        return 0 if self.kind == "rbf" else int(2 * _NU[self.kind])

    def frequencies_from_normals(self, g: Array, q: int) -> Array:
        """ω (…, q) from standard normals g (…, q + ``spectral_extra``)."""
        if self.kind == "rbf":
            return g
        dof = self.spectral_extra
        u = jnp.sum(g[..., q:] ** 2, axis=-1, keepdims=True)  # χ²(dof)
        return g[..., :q] * jnp.sqrt(dof / u)
