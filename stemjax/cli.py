"""The ``stemjax`` command line."""

from __future__ import annotations

import argparse
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
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
