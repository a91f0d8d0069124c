"""STEMGym dose-budget benchmark: the whole agent grid over all worlds and tasks.

Runs :func:`stemjax.worlds.stemgym.benchmark.run_benchmark` with the ``stemgym`` preset:
the paper's 6 agents (random, raster and GP-UCB with the peak finder, "none"; raster, GP-UCB
and the five-mode planner with the CNN) × 15 worlds (5 materials × 3 difficulties, default
size: 8 × 8 tiles of 32 px) × 4 tasks × 30 episodes, each episode one step per tile at the
dwell that spends the budget in one raster, the report scored every 8 steps. ``--agents``
changes the grid (add ``random+cnn`` for the full {random, raster, GP-UCB} × {none, CNN}).
Chunks go to ``--work`` as they finish, so an interrupted run resumes where it stopped (with
the same configuration and analyst weights; delete the folder after retraining the CNN).
Reported: mean DEC-AUC with bootstrap 95 % intervals per agent, world and task; Wilcoxon
(Bonferroni) and TOST tests of each navigator against raster under the same analyst; the
verdict on the paper's analyst-over-navigator finding with the ratio raster + CNN / raster +
none; the time of the grid on this machine and episodes per second at several batch sizes.
The same runs as ``stemjax sweep --preset stemgym --out DIR``.

Writes ``benchmarks/results/stemgym.json``, ``stemgym.md`` and ``stemgym/*.png``:

    python benchmarks/stemgym.py [--quick] [--work DIR] [--episodes N] [--agents A ...]
                                 [--cnn-weights PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path

from stemjax.worlds.stemgym.benchmark import PRESETS, default_analysts, run_benchmark

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="the tiny smoke-test preset with stand-in analysts")  # fmt: skip
    parser.add_argument("--work", default=str(RESULTS / "stemgym_run"),
                        help="folder of the chunks (resumable; not for the repository)")
    parser.add_argument("--episodes", type=int, default=None, help="(default 30)")
    parser.add_argument("--agents", nargs="+", default=None,
                        help="navigator+analyst names (default the preset's six)")
    parser.add_argument("--cnn-weights", default=None,
                        help="U-Net weights (.eqx with its .json); default the shipped ones")
    args = parser.parse_args()

    config = PRESETS["stemgym-quick" if args.quick else "stemgym"]
    if args.episodes is not None:
        config = dataclasses.replace(config, episodes=args.episodes)
    if args.agents is not None:
        config = dataclasses.replace(config, agents=tuple(args.agents))
    names = sorted({a.partition("+")[2] for a in config.agents})
    analysts = default_analysts([n for n in names if n != "cnn"])
    if "cnn" in names:
        from stemjax.worlds.stemgym.analysts import load_unet_analyst

        analysts["cnn"] = load_unet_analyst(args.cnn_weights)
    started = time.perf_counter()
    summary = run_benchmark(config, args.work, analysts=analysts)
    print(summary["verdict"]["text"])
    print(f"{time.perf_counter() - started:.0f} s")

    work = Path(args.work)
    name = "stemgym_quick" if args.quick else "stemgym"
    figures = RESULTS / name
    figures.mkdir(parents=True, exist_ok=True)
    for png in sorted((work / "figures").glob("*.png")):
        shutil.copyfile(png, figures / png.name)
    saved = json.loads((work / "results.json").read_text())
    saved["figures"] = [f"{name}/{p.name}" for p in sorted(figures.glob("*.png"))]
    (RESULTS / f"{name}.json").write_text(json.dumps(saved, indent=1))
    text = (work / "results.md").read_text()
    links = "\n".join(f"![{p}]({p})" for p in saved["figures"])
    (RESULTS / f"{name}.md").write_text(
        text + "\n## Figures\n\n" + links + "\n\nRun: `python benchmarks/stemgym.py"
        + (" --quick" if args.quick else "") + "` (or `stemjax sweep --preset "
        + ("stemgym-quick" if args.quick else "stemgym") + " --out DIR`).\n"
    )  # fmt: skip
    print(f"wrote {RESULTS / name}.json, {name}.md and {name}/")


if __name__ == "__main__":
    main()
