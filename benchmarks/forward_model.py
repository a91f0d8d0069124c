"""Images per second of the fast HAADF forward model, 256×256 pixels, batch 1 and 64.

Renders a V-doped MoS2 monolayer (the demo's specimen, about 1,700 sites in the field and
its margin) at 0.2 Å per pixel with stemjax's ``IncoherentImaging`` under ``jit`` (batch 1)
and ``jit(vmap)`` (batch 64 specimens). For a ratio within the same run, the same image is
computed by the conventional route in NumPy: splat the cross-sections bilinearly onto the
pixel grid and convolve with the probe intensity by FFT (which blurs sub-pixel positions
and is not differentiable).

Writes ``benchmarks/results/forward_model.json`` and ``forward_model.md``.

    python benchmarks/forward_model.py [--repeats 5] [--batch 64]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from stemjax.physics import IncoherentImaging, Probe, ScanGrid, annular_cross_section
from stemjax.physics.crystals import mx2_monolayer

PIXELS, STEP = 256, 0.2
RESULTS = Path(__file__).parent / "results"


def specimens(batch: int):
    cells = (int(np.ceil(PIXELS * STEP / 3.16)) + 1, int(np.ceil(PIXELS * STEP / 5.47)) + 1)
    keys = jax.random.split(jax.random.key(0), batch)
    build = lambda k: mx2_monolayer(  # noqa: E731
        k, "MoS2", cells, dopant="V", dopant_fraction=0.02, single_vacancy_fraction=0.02
    )
    return jax.vmap(build)(keys)


def best_time(fn, repeats: int) -> float:
    jax.block_until_ready(fn())  # compile and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)


def numpy_fft_convolution(specimen, probe: Probe) -> np.ndarray:
    """The conventional incoherent image: bilinear splat of σ, FFT convolution with the probe."""
    pos = np.asarray(specimen.positions[:, :2]) / STEP
    sigma = np.asarray(
        specimen.counts * specimen.occupancies * specimen.present
        * annular_cross_section(specimen.atomic_numbers, 21.0, np.inf, 200.0)
    )  # fmt: skip
    pad = 50
    n = PIXELS + 2 * pad
    grid = np.zeros((n, n))
    ij = np.floor(pos).astype(int) + pad
    frac = pos - np.floor(pos)
    for di in (0, 1):
        for dj in (0, 1):
            w = (frac[:, 1] if di else 1 - frac[:, 1]) * (frac[:, 0] if dj else 1 - frac[:, 0])
            ok = (ij[:, 1] + di < n) & (ij[:, 0] + dj < n) & (ij >= 0).all(axis=1)
            np.add.at(grid, (ij[ok, 1] + di, ij[ok, 0] + dj), (w * sigma)[ok])
    kernel = np.fft.ifftshift(np.asarray(probe.intensity((n, n), STEP))) / STEP**2
    image = np.fft.ifft2(np.fft.fft2(grid) * np.fft.fft2(kernel)).real
    return image[pad:-pad, pad:-pad]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()

    probe = Probe(200.0, 21.0)
    model = IncoherentImaging(probe)
    grid = ScanGrid((PIXELS, PIXELS), STEP)
    batch = specimens(args.batch)
    single = jax.tree.map(lambda x: x[0], batch)
    render_one = eqx.filter_jit(lambda m, s: m.scattering_depth(s, grid))
    render_many = eqx.filter_jit(jax.vmap(lambda m, s: m.scattering_depth(s, grid), (None, 0)))

    t_one = best_time(lambda: render_one(model, single), args.repeats)
    t_many = best_time(lambda: render_many(model, batch), args.repeats)
    t_numpy = best_time(lambda: numpy_fft_convolution(single, probe), args.repeats)
    rows = [
        {"method": "stemjax IncoherentImaging (jit)", "batch": 1, "images_per_s": 1 / t_one},
        {"method": "stemjax IncoherentImaging (jit+vmap)", "batch": args.batch,
         "images_per_s": args.batch / t_many},
        {"method": "NumPy splat + FFT convolution", "batch": 1, "images_per_s": 1 / t_numpy},
    ]  # fmt: skip
    for row in rows:
        row["ratio_to_numpy"] = row["images_per_s"] * t_numpy
    device = jax.devices()[0]
    meta = {
        "image": f"{PIXELS}x{PIXELS} px at {STEP} Å, MoS2 monolayer, 200 keV, 21 mrad",
        "sites_per_specimen": int(single.capacity),
        "device": f"{device.platform}: {device.device_kind}",
        "cpu": platform.processor() or platform.machine(),
        "jax": jax.__version__,
        "repeats": args.repeats,
        "timing": "best of repeats, after one warm-up call",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "forward_model.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [
        "# Fast HAADF forward model: images per second",
        "",
        *(f"- {k}: {v}" for k, v in meta.items()),
        "",
        "| method | batch | images/s | ratio to NumPy |",
        "|---|---:|---:|---:|",
        *(
            f"| {r['method']} | {r['batch']} | {r['images_per_s']:.1f} | {r['ratio_to_numpy']:.1f} |"
            for r in rows
        ),
    ]
    (RESULTS / "forward_model.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
