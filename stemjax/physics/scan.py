"""Scan grids and scan paths: where the probe stops, with drift and line jitter.

Images are indexed ``[row, column]``; rows run along y and columns along x, both in Å. The
probe moves along x within a line (fast axis) and steps in y between lines (slow axis).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from stemjax._validation import check_finite, check_int_at_least, check_nonnegative, check_positive


class ScanGrid(eqx.Module):
    """A regular raster of probe positions.

    Attributes:
        origin: (2,) position (x, y) of pixel [0, 0], Å.
        step: distance between neighbouring probe positions along x and y, Å (static: it
            sets array sizes downstream).
        shape: (rows, columns), static.
    """

    origin: Float[Array, "2"]
    step: float = eqx.field(static=True)
    shape: tuple[int, int] = eqx.field(static=True)

    def __init__(self, shape: tuple[int, int], step: float, origin=(0.0, 0.0)):
        rows, cols = shape
        self.shape = (check_int_at_least("shape[0]", rows, 1), check_int_at_least("shape[1]", cols, 1))
        check_positive("step", step, "Å")
        check_finite("origin", origin)
        self.step = float(step)
        self.origin = jnp.asarray(origin, jnp.result_type(float))

    @property
    def extent(self) -> Float[Array, "2"]:
        """(2,) field of view (x, y) covered by the scan, Å (shape × step)."""
        return jnp.array([self.shape[1], self.shape[0]]) * self.step

    def positions(self) -> Float[Array, "h w 2"]:
        """(h, w, 2) probe positions (x, y), Å."""
        rows, cols = jnp.arange(self.shape[0]), jnp.arange(self.shape[1])
        x = self.origin[0] + cols * self.step
        y = self.origin[1] + rows * self.step
        return jnp.stack(jnp.broadcast_arrays(x[None, :], y[:, None]), axis=-1)

    def subgrid(self, row: int, column: int, shape: tuple[int, int]) -> ScanGrid:
        """The ``shape`` sub-raster whose pixel [0, 0] is this grid's pixel [row, column]."""
        if not (0 <= row and row + shape[0] <= self.shape[0]):
            raise ValueError(
                f"row + shape[0] must lie in [0, {self.shape[0]}]; got row={row}, shape={shape}"
            )
        if not (0 <= column and column + shape[1] <= self.shape[1]):
            raise ValueError(
                f"column + shape[1] must lie in [0, {self.shape[1]}]; got column={column}, "
                f"shape={shape}"
            )
        origin = self.origin + jnp.array([column, row]) * self.step
        return ScanGrid(shape, self.step, origin)

    def path(self) -> ScanPath:
        """The undistorted path of this raster."""
        rows = jnp.arange(self.shape[0])
        return ScanPath(
            line_x0=jnp.full(self.shape[0], self.origin[0]),
            line_y=self.origin[1] + rows * self.step,
            x_step=jnp.asarray(self.step, self.origin.dtype),
            nominal_step=self.step,
            columns=self.shape[1],
        )


class ScanPath(eqx.Module):
    """The probe positions actually visited: line i, pixel j sits at
    (``line_x0[i] + j * x_step``, ``line_y[i]``), in Å.

    Attributes:
        line_x0: (h,) x of the first pixel of each line, Å.
        line_y: (h,) y of each line, Å.
        x_step: distance between pixels along a line, Å.
        nominal_step: the commanded step of the raster, Å (static).
        columns: pixels per line, static.
    """

    line_x0: Float[Array, " h"]
    line_y: Float[Array, " h"]
    x_step: Float[Array, ""]
    nominal_step: float = eqx.field(static=True)
    columns: int = eqx.field(static=True)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the image recorded along this path."""
        return (self.line_y.shape[-1], self.columns)


class ScanDistortion(eqx.Module):
    """Specimen drift and line jitter during a raster scan.

    Attributes:
        drift_A_per_s: (2,) velocity (x, y) of the probe relative to the specimen, Å/s (a
            specimen drifting at −v under a still scan).
        line_jitter_A: rms random x offset of each scan line, Å.
        flyback_us: time between the end of one line and the start of the next, µs.
    """

    drift_A_per_s: Float[Array, "2"]
    line_jitter_A: Float[Array, ""]
    flyback_us: Float[Array, ""]

    def __init__(self, drift_A_per_s=(0.0, 0.0), line_jitter_A=0.0, flyback_us=0.0):
        check_finite("drift_A_per_s", drift_A_per_s)
        check_nonnegative("line_jitter_A", line_jitter_A, "Å")
        check_nonnegative("flyback_us", flyback_us, "µs")
        dtype = jnp.result_type(float)
        self.drift_A_per_s = jnp.asarray(drift_A_per_s, dtype)
        self.line_jitter_A = jnp.asarray(line_jitter_A, dtype)
        self.flyback_us = jnp.asarray(flyback_us, dtype)


def distorted_path(
    key: PRNGKeyArray, grid: ScanGrid, distortion: ScanDistortion, dwell_us: float
) -> ScanPath:
    """The path of ``grid`` as recorded under ``distortion``.

    Pixel (i, j) is visited at t = i (w τ + t_fly) + j τ (τ the dwell time). Drift moves the
    probe relative to the specimen by v t; along a line the x drift stretches the step to
    ``step + v_x τ``, and each line's y is taken at the middle of the line (the y drift within
    one line, v_y w τ, is neglected). Line jitter adds an independent N(0, σ²) x offset per line.

    Args:
        key: PRNG key for the line jitter.
        grid: the raster as commanded.
        distortion: drift velocity (Å/s), jitter (Å) and flyback time (µs).
        dwell_us: time per probe position, µs.
    """
    check_positive("dwell_us", dwell_us, "µs")
    rows, cols = grid.shape
    dwell_s = jnp.asarray(dwell_us) * 1e-6
    line_time_s = cols * dwell_s + distortion.flyback_us * 1e-6
    line_start_s = jnp.arange(rows) * line_time_s
    vx, vy = distortion.drift_A_per_s[0], distortion.drift_A_per_s[1]
    jitter = distortion.line_jitter_A * jax.random.normal(key, (rows,), grid.origin.dtype)
    return ScanPath(
        line_x0=grid.origin[0] + vx * line_start_s + jitter,
        line_y=grid.origin[1] + jnp.arange(rows) * grid.step
        + vy * (line_start_s + 0.5 * (cols - 1) * dwell_s),
        x_step=grid.step + vx * dwell_s,
        nominal_step=grid.step,
        columns=cols,
    )
