"""The ``stemjax`` command line."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import fields

from stemjax.demo import DemoSettings, run_demo


def _demo(args: argparse.Namespace) -> int:
    overrides = {f.name: getattr(args, f.name) for f in fields(DemoSettings)}
    settings = DemoSettings(**overrides)
    started = time.perf_counter()
    summary = run_demo(args.out, settings)
    elapsed = time.perf_counter() - started
    defects = summary["defects_in_scanned_area"]
    destroyed = summary["destroyed_by_first_frame"]
    print(
        f"stemjax demo: V-doped MoS2 monolayer, {settings.energy_kev:g} keV, "
        f"{settings.semiangle_mrad:g} mrad, HAADF 68-200 mrad\n"
        f"  scan            {settings.pixels}x{settings.pixels} px at {settings.step_A} Å "
        f"({summary['field_of_view_A'][0]:.1f} Å field), {settings.current_pA:g} pA, "
        f"{settings.dwell_us:g} µs dwell\n"
        f"  dose            {summary['electrons_per_position']:.0f} e-/position, "
        f"{summary['dose_per_frame_e_per_A2']:.3g} e-/Å² per frame\n"
        f"  counts          mean {summary['mean_counts_per_position']:.2f}, "
        f"max {summary['max_counts_per_position']:.2f} HAADF electrons per position\n"
        f"  present         {defects['Mo_atoms']} Mo, {defects['S_atoms']} S, "
        f"{defects['V_dopants']} V dopants, {defects['S_vacancies']} S vacancies\n"
        f"  destroyed       {destroyed['S_atoms']} S, {destroyed['Mo_atoms']} Mo, "
        f"{destroyed['V_atoms']} V atoms knocked on by frame 1\n"
        f"  wrote           {args.out}/haadf_before.png, haadf_after.png, "
        f"haadf_before_after.png, summary.json ({elapsed:.1f} s)"
    )
    return 0


def _has_data(world: str) -> bool:
    from stemjax.worlds import data_dir

    name = {"pfm": "pfm_pto_beacon.npz", "eels": "eels_plasmonic_scalarizer.npz"}[world]
    try:
        return (data_dir() / "pfm_pto_beacon" / name).exists()
    except FileNotFoundError:
        return False


def _stemgym(args: argparse.Namespace) -> int:
    """``stemjax sweep --preset stemgym[-quick]``: the STEMGym agent grid over all worlds."""
    from stemjax.worlds.stemgym.benchmark import PRESETS, run_benchmark

    unused = [f"--{name.replace('_', '-')}" for name in
              ("world", "surrogate", "n_seeds", "refit_steps", "fit_steps",
               "principal_components", "time_budget_s")
              if getattr(args, name) is not None]  # fmt: skip
    unused += [flag for flag, name in (("--paper-seeds", "paper_seeds"),
                                       ("--no-feature-space", "no_feature_space"))
               if getattr(args, name)]  # fmt: skip
    if unused:
        raise ValueError(f"{', '.join(unused)} do not apply to preset {args.preset!r}; it "
                         "takes --out, --campaigns (episodes per agent and world), --steps, "
                         "--chunk (worlds per chunk), --seed and --policies (agents)")  # fmt: skip
    names = {"campaigns": "episodes", "steps": "steps", "chunk": "worlds_per_chunk",
             "seed": "seed"}  # fmt: skip
    overrides = {new: getattr(args, old) for old, new in names.items()
                 if getattr(args, old) is not None}  # fmt: skip
    if args.policies is not None:
        overrides["agents"] = tuple(args.policies)
    config = dataclasses.replace(PRESETS[args.preset], **overrides)
    out = args.out or f"sweep_{args.preset}"
    started = time.perf_counter()
    summary = run_benchmark(config, out, progress=not args.no_progress)
    print(summary["verdict"]["text"])
    print(f"\nwrote {out}/results.json, results.md, episodes.npz and figures/ "
          f"({time.perf_counter() - started:.0f} s)")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from stemjax.campaign import preset, real_world_and_labels, sweep, write_report

    if args.preset.startswith("stemgym"):
        return _stemgym(args)
    config = preset(args.preset)
    overrides = {
        name: getattr(args, name)
        for name in ("world", "campaigns", "steps", "chunk", "surrogate", "n_seeds", "seed",
                     "refit_steps", "fit_steps", "principal_components")
        if getattr(args, name) is not None
    }  # fmt: skip
    if args.policies is not None:
        overrides["policies"] = tuple(args.policies)
    if args.paper_seeds:
        overrides["paper_seeds"] = True
    if args.no_feature_space:
        overrides["feature_space"] = False
    if args.time_budget_s is not None:
        overrides["world_options"] = {**config.world_options, "time_budget_s": args.time_budget_s}
    config = dataclasses.replace(config, **overrides)
    if args.time_budget_s is not None and config.world != "library":
        raise ValueError(f"--time-budget-s applies to world 'library' only; got world "
                         f"{config.world!r}")  # fmt: skip
    if args.world is None and config.world in ("pfm", "eels") and not _has_data(config.world):
        print(f"stemjax sweep: the real {config.world} data are not available here (see "
              "STEMJAX_DATA); running on the simulated 'domains' world instead", file=sys.stderr)
        config = dataclasses.replace(config, world="domains", feature_space=False)
    out = args.out or f"sweep_{args.preset}"
    started = time.perf_counter()
    results = sweep(config, out, progress=not args.no_progress)
    world, labels = real_world_and_labels(config, out)
    text = write_report(out, results, config, world, labels)
    elapsed = time.perf_counter() - started
    print(text)
    print(f"\nwrote {out}/results.nc, summary.md and figures/ ({elapsed:.0f} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``stemjax`` command."""
    parser = argparse.ArgumentParser(prog="stemjax", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="image a V-doped MoS2 monolayer before and after beam damage"
    )
    demo.add_argument("--out", default="demo_output", help="output folder")
    for field in fields(DemoSettings):
        demo.add_argument(
            f"--{field.name.replace('_', '-')}", dest=field.name, type=type(field.default),
            default=field.default, help=f"(default {field.default})",
        )  # fmt: skip
    demo.set_defaults(run=_demo)

    from stemjax.campaign import LIBRARY_POLICY_NAMES, POLICY_NAMES, PRESETS, WORLDS
    from stemjax.worlds.stemgym.benchmark import PRESETS as STEMGYM_PRESETS

    sw = commands.add_parser(
        "sweep", help="run many autonomous campaigns per policy and summarise them",
        description="Run campaigns x policies on a structure-property world or on random "
        "particle libraries (--preset library-3d), in resumable chunks; write results.nc, "
        "summary.md and figures. --preset stemgym runs the STEMGym dose-budget benchmark "
        "(agents x worlds x tasks x episodes; results.json, results.md, figures). Options "
        "override the preset.",
    )  # fmt: skip
    sw.add_argument("--preset", default="quick", choices=sorted(PRESETS) + sorted(STEMGYM_PRESETS),
                    help="(default quick)")  # fmt: skip
    sw.add_argument("--out", default=None, help="output folder (default sweep_<preset>)")
    sw.add_argument("--world", choices=WORLDS, default=None)
    sw.add_argument("--policies", nargs="+", metavar="POLICY", default=None,
                    help=f"any of {', '.join(POLICY_NAMES)}; for world library any of "
                    f"{', '.join(LIBRARY_POLICY_NAMES)}")  # fmt: skip
    for name in ("campaigns", "steps", "chunk", "n_seeds", "seed", "refit_steps", "fit_steps",
                 "principal_components"):
        sw.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int, default=None)
    sw.add_argument("--surrogate", choices=("gp", "dkl"), default=None)
    sw.add_argument("--time-budget-s", dest="time_budget_s", type=float, default=None,
                    help="world library: time budget per campaign, s (default: none)")  # fmt: skip
    sw.add_argument("--paper-seeds", action="store_true",
                    help="start every campaign from the world's own seed points")  # fmt: skip
    sw.add_argument("--no-feature-space", action="store_true",
                    help="skip the VAE (feature coverage then equals patch coverage)")  # fmt: skip
    sw.add_argument("--no-progress", action="store_true")
    sw.set_defaults(run=_sweep)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
