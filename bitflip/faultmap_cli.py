"""`faultmap` subcommand: write the `official` map of a seed as a chip folder, or describe map files.

`export` writes fmap_sa0_v_<V>.txt / fmap_sa1_v_<V>.txt (bitflip/chipmap.py's format); evaluating
with `--fault-model chipmap --fault-map DIR` then gives exactly the faults of `official` with that
seed. `info` prints each map's voltage and measured BER.

Examples:
    python zs_main.py faultmap export --seed 50000 -ber 0.01 --out chips/s50000
    python zs_main.py faultmap info chips/
"""
from __future__ import annotations

import argparse
from typing import Sequence

from bitflip.chipmap import ALL_VOLTAGES, FaultMapError, describe, export_official, resolve_maps
from bitflip.faults import MAX_SEED, FaultConfig
from common.cli import EXIT_USAGE, OneLineParser, option, run_subcommand
from common.cli_types import bit_error_rate, seed_in


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="zs_main.py faultmap", description="Measured SRAM fault maps (fault model chipmap).")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="{export,info}", parser_class=OneLineParser)
    e = sub.add_parser("export", help="write the official map of a seed as fmap_sa0/sa1_v_<V>.txt",
                       description="Write the official fault map of one seed and BER as a chip folder "
                                   "(fmap_sa0_v_<V>.txt, fmap_sa1_v_<V>.txt) for --fault-model chipmap.")
    e.add_argument("--seed", type=seed_in(MAX_SEED), required=True, help="official fault seed (e.g. 50000)")
    option(e, FaultConfig, "ber", type=bit_error_rate, metavar="BER")
    e.add_argument("--out", required=True, metavar="DIR", help="the chip folder to write")
    e.add_argument("--voltage", default="0", help="voltage label in the file names (default 0)")
    option(e, FaultConfig, "position", type=int, metavar="BIT")
    option(e, FaultConfig, "bits", type=int, choices=range(2, 9), metavar="B")
    i = sub.add_parser("info", help="voltages and measured BER of map folders / .npz files",
                       description="Print each fault map's voltage and measured BER.")
    i.add_argument("paths", nargs="+", metavar="PATH",
                   help="a chip folder (fmap_sa0_v_<V>.txt, fmap_sa1_v_<V>.txt), an .npz with sa0/sa1, or a "
                        "folder of them")
    i.add_argument("--voltage", default=ALL_VOLTAGES, help="only this voltage (default all)")
    return p


def _run(args: argparse.Namespace) -> int:
    if args.cmd == "export":
        fault = FaultConfig("official", args.ber, position=args.pos, bits=args.bits)   # checks -pos against --bits
        paths = export_official(args.out, args.seed, fault.ber, args.voltage, fault.bits, fault.position)
        print(f"official map of seed {args.seed} at ber={fault.ber:g} -> {paths[0]}, {paths[1]}")
        print(describe(str(paths[0])))
        return 0
    for source in resolve_maps(args.paths, args.voltage):
        print(describe(source))
    return 0


def main(argv: Sequence[str]) -> int:
    return run_subcommand(build_parser(), argv, _run, {(FaultMapError, ValueError): EXIT_USAGE})
