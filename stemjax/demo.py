"""The demo: a V-doped MoS2 monolayer imaged, damaged by the beam, and imaged again."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from stemjax.physics.acquisition import Acquisition, acquire
from stemjax.physics.crystals import mx2_monolayer
from stemjax.physics.damage import apply_damage
from stemjax.physics.dose import DoseMap, deposit, site_dose
from stemjax.physics.haadf import IncoherentImaging
from stemjax.physics.probe import Probe
from stemjax.physics.scan import ScanDistortion, ScanGrid
from stemjax.physics.specimen import VACANCY


@dataclass(frozen=True)
class DemoSettings:
    """Defaults: the STEMGym simulation settings (200 keV, 21 mrad, HAADF 68–200 mrad)."""

    seed: int = 0
    energy_kev: float = 200.0
    semiangle_mrad: float = 21.0
    current_pA: float = 30.0
    dwell_us: float = 20.0
    pixels: int = 256
    step_A: float = 0.18
    dopant_fraction: float = 0.04
    single_vacancy_fraction: float = 0.03
    double_vacancy_fraction: float = 0.01


def run_demo(out_dir: str | Path, settings: DemoSettings = DemoSettings()) -> dict:
    """Render, damage and re-render; write PNGs, arrays and a JSON summary to ``out_dir``.

    Returns the summary (also printed by the command line).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    key_specimen, key_first, key_damage, key_second = jax.random.split(
        jax.random.key(settings.seed), 4
    )
    field_A = settings.pixels * settings.step_A
    cells = (int(np.ceil(field_A / 3.160)) + 1, int(np.ceil(field_A / (3.160 * 3**0.5))) + 1)
    specimen = mx2_monolayer(
        key_specimen,
        "MoS2",
        cells=cells,
        dopant="V",
        dopant_fraction=settings.dopant_fraction,
        single_vacancy_fraction=settings.single_vacancy_fraction,
        double_vacancy_fraction=settings.double_vacancy_fraction,
    )
    probe = Probe(settings.energy_kev, settings.semiangle_mrad)
    model = IncoherentImaging(probe)
    grid = ScanGrid((settings.pixels, settings.pixels), settings.step_A, origin=(1.0, 1.0))
    acquisition = Acquisition(
        settings.current_pA,
        settings.dwell_us,
        distortion=ScanDistortion(drift_A_per_s=(0.5, 0.3), line_jitter_A=0.05),
        read_noise=0.5,
    )

    first = acquire(key_first, model, specimen, grid, acquisition)
    electrons = acquisition.electrons_per_position
    damaged, displaced = apply_damage(
        key_damage, specimen, site_dose(specimen, grid, electrons), settings.energy_kev
    )
    dose_map = deposit(DoseMap.covering(specimen, 1.0), grid, electrons)
    second = acquire(key_second, model, damaged, grid, acquisition)

    scanned = np.asarray(site_dose(specimen, grid, 1.0)) > 0
    z = np.asarray(specimen.atomic_numbers)
    types = np.asarray(specimen.atom_types)
    occupied = np.asarray(specimen.occupancies) > 0
    displaced = np.asarray(displaced)
    summary = {
        "settings": asdict(settings),
        "field_of_view_A": [field_A, field_A],
        "electrons_per_position": float(electrons),
        "dose_per_frame_e_per_A2": float(first.dose),
        "peak_dose_in_map_e_per_A2": float(jnp.max(dose_map.dose)),
        "mean_counts_per_position": float(jnp.mean(first.expected_counts)),
        "max_counts_per_position": float(jnp.max(first.expected_counts)),
        "defects_in_scanned_area": {
            "V_dopants": int(np.sum(scanned & (types == 2) & (z == 23))),
            "S_vacancies": int(np.sum(scanned & (types == VACANCY) & (z == 16))),
            "S_atoms": int(np.sum(scanned & occupied & (z == 16))),
            "Mo_atoms": int(np.sum(scanned & occupied & (z == 42))),
        },
        "destroyed_by_first_frame": {
            "S_atoms": int(np.sum(displaced[z == 16])),
            "Mo_atoms": int(np.sum(displaced[z == 42])),
            "V_atoms": int(np.sum(displaced[z == 23])),
        },
    }
    _save_images(out, np.asarray(first.image), np.asarray(second.image), summary)
    np.save(out / "haadf_before.npy", np.asarray(first.image))
    np.save(out / "haadf_after.npy", np.asarray(second.image))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _save_images(out: Path, before: np.ndarray, after: np.ndarray, summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    field = summary["field_of_view_A"][0]
    vmax = float(np.percentile(np.concatenate([before.ravel(), after.ravel()]), 99.9))
    extent = (0, field, field, 0)
    for name, image in (("haadf_before.png", before), ("haadf_after.png", after)):
        plt.imsave(out / name, image, cmap="gray", vmin=0, vmax=vmax)
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.2), constrained_layout=True)
    dose = summary["dose_per_frame_e_per_A2"]
    destroyed = summary["destroyed_by_first_frame"]["S_atoms"]
    titles = (
        f"Frame 1: V-doped MoS2, {dose:.2g} e⁻/Å²",
        f"Frame 2: after frame 1 ({destroyed} S atoms sputtered)",
    )
    for ax, image, title in zip(axes, (before, after), titles):
        shown = ax.imshow(image, cmap="gray", vmin=0, vmax=vmax, extent=extent)
        ax.set_title(title)
        ax.set_xlabel("x (Å)")
        ax.set_ylabel("y (Å)")
    fig.colorbar(shown, ax=axes, shrink=0.8, label="HAADF counts")
    fig.savefig(out / "haadf_before_after.png", dpi=110)
    plt.close(fig)
