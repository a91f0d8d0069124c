"""Compare a simulated MoS2 HAADF image with a real one: lattice and Mo/S2 column contrast.

Reads the real 60 kV HAADF images of (V-doped) MoS2 monolayers in ``../shared/data/mos2_haadf``
(SciLink, M. Ziatdinov et al., ORNL; MIT as declared), measures each image's lattice from its
first-order Bragg peaks (``stemjax.perception.sites.hexagonal_lattice``; the pixel size from
the cell area, since these scans are stretched by ~10-20 % along one axis) and its Mo : S2
column contrast from the lattice-averaged unit cell, and
does the same for stemjax images of MoS2 simulated at 60 keV with the real images' pixel size.

Contrast = (I_Mo − I_hollow) / (I_S2 − I_hollow), I the unit-cell average at each site. For the
incoherent model with cross-sections ∝ Z^n it is about 42^n / (2 · 16^n): 2.6 for n = 1.7.

    python examples/real_mos2_contrast.py [--data ../shared/data/mos2_haadf] [--exponent 1.7]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import numpy as np

from stemjax.perception.sites import hexagonal_lattice, pixel_size_from_lattice
from stemjax.physics import (
    Acquisition,
    IncoherentImaging,
    Probe,
    ScanGrid,
    acquire,
    mx2_monolayer,
)

MOS2_A = 3.160  # Å, in-plane lattice parameter of the builder
BRAGG_100 = MOS2_A * np.sqrt(3) / 2  # Å, spacing of the strongest lattice fringes


def contrast(image: np.ndarray, bins: int = 30) -> float:
    """Mo : S2 column contrast from the lattice-averaged unit cell (see module docstring)."""
    g1, g2 = hexagonal_lattice(image)
    rows, cols = np.indices(image.shape)
    u = (cols * g1[0] + rows * g1[1]) % 1.0
    v = (cols * g2[0] + rows * g2[1]) % 1.0
    cell = (np.floor(u * bins).astype(int), np.floor(v * bins).astype(int))
    total = np.zeros((bins, bins))
    count = np.zeros((bins, bins))
    np.add.at(total, cell, image)
    np.add.at(count, cell, 1)
    motif = total / np.maximum(count, 1)
    # smooth over neighbouring bins (periodic), then read the three high-symmetry sites: with
    # Bragg peaks 60° apart the real-space basis is 120° apart, and the honeycomb sites sit at
    # (1/3, 2/3) and (2/3, 1/3) from the brightest (Mo)
    motif = sum(np.roll(motif, (i, j), (0, 1)) for i in (-1, 0, 1) for j in (-1, 0, 1)) / 9
    mo = np.array(np.unravel_index(np.argmax(motif), motif.shape))
    thirds = [((mo + bins * np.array(d) / 3).round().astype(int)) % bins for d in ((1, 2), (2, 1))]
    others = sorted(float(motif[tuple(t)]) for t in thirds)
    hollow, sulfur = others
    return (float(motif[tuple(mo)]) - hollow) / (sulfur - hollow)


def simulate(pixel_A: float, exponent: float, seed: int = 0, pixels: int = 256) -> np.ndarray:
    """A 60 keV HAADF image of MoS2 at ``pixel_A`` Å per pixel (30 pA, 4 µs dwell)."""
    key_specimen, key_image = jax.random.split(jax.random.key(seed))
    field = pixels * pixel_A
    cells = (int(field / MOS2_A) + 2, int(field / (MOS2_A * np.sqrt(3))) + 2)
    specimen = mx2_monolayer(key_specimen, "MoS2", cells)
    model = IncoherentImaging(Probe(60.0, 30.0), exponent=exponent)
    grid = ScanGrid((pixels, pixels), pixel_A, origin=(1.0, 1.0))
    frame = acquire(key_image, model, specimen, grid, Acquisition(30.0, 4.0))
    return np.asarray(frame.image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data" / "mos2_haadf"
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--exponent", type=float, default=1.7)
    args = parser.parse_args()

    print("image                  fringe (px)  pixel (Å, from lattice)  FOV from metadata (Å)  Mo:S2")
    pixels = []
    for path in sorted(args.data.glob("*.npy")):
        image = np.load(path, allow_pickle=False)
        meta = json.loads(path.with_suffix(".json").read_text())
        fov = meta.get("experimental_details", {}).get("spatial_info", {}).get("field_of_view_x")
        g1, g2 = hexagonal_lattice(image)
        fringe = 1.0 / np.hypot(*g1)  # the strongest fringes
        pixel = pixel_size_from_lattice(g1, g2, MOS2_A)  # from the cell area: scans are anisotropic
        pixels.append(pixel)
        stated = f"{10 * fov:.0f}" if fov else "?"
        print(
            f"{path.stem:22s} {fringe:11.2f}  {pixel:23.4f}  {stated:>21s}  {contrast(image):5.2f}"
        )
    pixel = float(np.median(pixels))
    simulated = simulate(pixel, args.exponent)
    print(
        f"{'stemjax, n = ' + str(args.exponent):22s} {BRAGG_100 / pixel:11.2f}  {pixel:23.4f}"
        f"  {'':>21s}  {contrast(simulated):5.2f}"
    )


if __name__ == "__main__":
    main()
