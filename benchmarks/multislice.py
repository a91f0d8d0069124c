"""HAADF multislice scan of SrTiO3 [001]: stemjax against abTEM, same physics and sampling.

A 3 × 3 cell SrTiO3 [001] slab (``stemjax.physics.perovskite``, a = 3.905 Å, 5 cells = 19.5 Å
thick) is scanned by a 200 keV, 21 mrad aberration-free probe over one unit cell on an 8 × 8
raster (step a/8, so the Sr, TiO and O columns fall on scan points), with a 68–200 mrad HAADF
detector. Both codes use Lobato scattering factors, 0.04 Å pixels (the 3 × 3 cell spans
293 × 293 pixels, λ/(3Δx) = 209 mrad), slices of c/2 = 1.9525 Å and ``--phonons`` frozen-phonon
configurations with in-plane Gaussian displacements of σ = √(B/8π²) = 0.0796 Å (B = 0.5 Å²).
abTEM also displaces atoms along the beam; stemjax does not.

Reported: the HAADF signal on the Sr, TiO and O columns (fraction of the incident electrons)
and relative to Sr, and wall times: stemjax's first call (with compilation) and the best of
``--repeats`` later calls; abTEM's best of ``--repeats`` calls (the first is counted as
warm-up). abTEM is optional (the ``bench`` extra); without it the script reports stemjax alone.

``--convergence`` adds the static (B = 0, no phonons) column signals at 0.04, 0.03 and
0.02 Å pixels from both codes, which shows how each converges with the sampling.

Writes ``benchmarks/results/<name>.json`` and ``<name>.md`` (``--name``, default ``multislice``).

    python benchmarks/multislice.py [--phonons 8] [--repeats 3] [--convergence]
        [--sampling 0.04] [--name multislice]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from stemjax.physics import AnnularDetector, Probe, perovskite
from stemjax.physics.multislice import Multislice

RESULTS = Path(__file__).parent / "results"
A = 3.905  # SrTiO3 lattice parameter, Å
CELLS, THICKNESS, SAMPLING, SLICE = (3, 3), 19.5, 0.04, A / 2
ENERGY, SEMIANGLE, INNER, OUTER = 200.0, 21.0, 68.0, 200.0
DEBYE_WALLER = 0.5  # Å², stemjax's generic value (crystals.GENERIC_DEBYE_WALLER)
RASTER = 8
COLUMNS = {"Sr": (0, 0), "TiO": (RASTER // 2, RASTER // 2), "O": (0, RASTER // 2)}  # [row, col]


def stemjax_scan(phonons: int, repeats: int, sampling: float) -> dict:
    specimen = perovskite("SrTiO3", CELLS, THICKNESS)
    model = Multislice(Probe(ENERGY, SEMIANGLE), specimen, sampling, SLICE)
    steps = A + np.arange(RASTER) * A / RASTER  # the middle cell; the grid is periodic
    x, y = np.meshgrid(steps, steps)
    positions = jnp.asarray(np.stack([x, y], axis=-1))
    detector = AnnularDetector(INNER, OUTER)

    def run():
        image = model.scan(specimen, positions, [detector], key=jax.random.key(0), phonons=phonons)
        return jax.block_until_ready(image)[..., 0]

    start = time.perf_counter()
    image = run()
    first = time.perf_counter() - start
    best = min(_timed(run) for _ in range(repeats))
    return {
        "image": np.asarray(image, float),
        "first_call_s": first,
        "best_s": best,
        "grid": f"{model.shape[0]}x{model.shape[1]} px at {model.sampling[0]:.5f} Å",
        "slices": model.n_slices,
    }


def abtem_scan(phonons: int, repeats: int, sampling: float) -> dict | None:
    try:
        import abtem
        from ase import Atoms
    except ImportError:
        return None
    atoms = _ase_slab(Atoms)
    sigma = float(np.sqrt(DEBYE_WALLER / (8 * np.pi**2)))
    frozen = abtem.FrozenPhonons(atoms, num_configs=phonons, sigmas=sigma, seed=0)
    potential = abtem.Potential(
        frozen, sampling=sampling, slice_thickness=SLICE, parametrization="lobato"
    )
    probe = abtem.Probe(energy=ENERGY * 1e3, semiangle_cutoff=SEMIANGLE)
    scan = abtem.GridScan(start=(A, A), end=(2 * A, 2 * A), gpts=(RASTER, RASTER), endpoint=False)
    detector = abtem.AnnularDetector(inner=INNER, outer=OUTER)

    def run():
        measurement = probe.scan(potential, scan=scan, detectors=detector).compute()
        array = np.asarray(measurement.array, float)
        return array.mean(axis=0) if array.ndim == 3 else array  # ensemble axis, if kept

    times = [_timed(run) for _ in range(repeats + 1)]
    image = run()
    # abTEM indexes scans [x, y]; stemjax images are [row = y, column = x]
    return {"image": image.T, "best_s": min(times[1:]), "version": abtem.__version__}


def convergence(samplings=(0.04, 0.03, 0.02)) -> list[dict]:
    """Static HAADF (B = 0, no phonons) on the three columns at several pixel sizes."""
    import equinox as eqx

    specimen = perovskite("SrTiO3", CELLS, THICKNESS)
    still = eqx.tree_at(lambda s: s.debye_waller, specimen, jnp.zeros_like(specimen.debye_waller))
    points = np.array([[A, A], [1.5 * A, 1.5 * A], [1.5 * A, A]])  # Sr, TiO, O
    rows = []
    for sampling in samplings:
        model = Multislice(Probe(ENERGY, SEMIANGLE), specimen, sampling, SLICE)
        ours = model.scan(still, jnp.asarray(points), [AnnularDetector(INNER, OUTER)])[:, 0]
        rows.append({"code": "stemjax", "sampling": sampling, **_columns(ours)})
        try:
            import abtem
            from ase import Atoms
        except ImportError:
            continue
        potential = abtem.Potential(
            _ase_slab(Atoms), sampling=sampling, slice_thickness=SLICE, parametrization="lobato"
        )
        probe = abtem.Probe(energy=ENERGY * 1e3, semiangle_cutoff=SEMIANGLE)
        detector = abtem.AnnularDetector(inner=INNER, outer=OUTER)
        theirs = probe.scan(potential, scan=abtem.CustomScan(points), detectors=detector)
        rows.append({"code": "abTEM", "sampling": sampling, **_columns(theirs.compute().array)})
    return rows


def _ase_slab(atoms_class):
    """The same SrTiO3 slab as an ASE Atoms object (Sr at the origin, c along z)."""
    cell = atoms_class(
        "SrTiO3",
        scaled_positions=[(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)],
        cell=[A, A, A],
        pbc=True,
    )
    return cell.repeat((*CELLS, round(THICKNESS / A)))


def _columns(values) -> dict:
    return dict(zip(("Sr", "TiO", "O"), map(float, np.asarray(values))))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def columns(image: np.ndarray) -> dict:
    values = {name: float(image[index]) for name, index in COLUMNS.items()}
    return {**values, **{f"{name}/Sr": values[name] / values["Sr"] for name in ("TiO", "O")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phonons", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--convergence", action="store_true")
    parser.add_argument("--sampling", type=float, default=SAMPLING, help="pixel size, Å")
    parser.add_argument("--name", default="multislice", help="results file stem")
    args = parser.parse_args()

    ours = stemjax_scan(args.phonons, args.repeats, args.sampling)
    theirs = abtem_scan(args.phonons, args.repeats, args.sampling)
    rows = [{"code": f"stemjax (jax {jax.__version__})", **columns(ours["image"]),
             "best_s": ours["best_s"], "first_call_s": ours["first_call_s"]}]  # fmt: skip
    if theirs is not None:
        rows.append({"code": f"abTEM {theirs['version']}", **columns(theirs["image"]),
                     "best_s": theirs["best_s"], "first_call_s": None})  # fmt: skip
    device = jax.devices()[0]
    meta = {
        "specimen": f"SrTiO3 [001], {CELLS[0]}x{CELLS[1]} cells, {THICKNESS} Å thick",
        "probe": f"{ENERGY} keV, {SEMIANGLE} mrad, aberration-free",
        "detector": f"HAADF {INNER}-{OUTER} mrad",
        "grid": ours["grid"],
        "slices": f"{ours['slices']} of {SLICE:.4f} Å",
        "scan": f"{RASTER}x{RASTER} positions, step a/{RASTER}",
        "phonons": args.phonons,
        "scattering_factors": "Lobato & Van Dyck (2014)",
        "timing": f"best of {args.repeats} calls after a warm-up call",
        "device": f"{device.platform}: {device.device_kind}",
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "abtem": theirs["version"] if theirs else "not installed: stemjax alone",
    }
    if theirs is not None:
        meta["time_ratio"] = theirs["best_s"] / ours["best_s"]
        meta["time_ratio_meaning"] = "abTEM time / stemjax time (> 1: stemjax faster)"
    static = convergence() if args.convergence else []
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(
        json.dumps({"meta": meta, "rows": rows, "static_convergence": static}, indent=2)
    )
    lines = [
        "# Multislice HAADF scan of SrTiO3 [001]: stemjax and abTEM",
        "",
        *(f"- {k}: {v}" for k, v in meta.items()),
        "",
        "| code | Sr | TiO | O | TiO/Sr | O/Sr | best time (s) | first call (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r['code']} | {r['Sr']:.4f} | {r['TiO']:.4f} | {r['O']:.4f} | {r['TiO/Sr']:.3f} | "
            f"{r['O/Sr']:.3f} | {r['best_s']:.2f} | "
            f"{'' if r['first_call_s'] is None else format(r['first_call_s'], '.2f')} |"
            for r in rows
        ),
    ]
    if static:
        lines += [
            "",
            "## Static potential (B = 0, no phonons): HAADF against pixel size",
            "",
            "| code | pixel (Å) | Sr | TiO | O |",
            "|---|---:|---:|---:|---:|",
            *(f"| {r['code']} | {r['sampling']} | {r['Sr']:.4f} | {r['TiO']:.4f} | {r['O']:.5f} |"
              for r in static),  # fmt: skip
        ]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
