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
import sys
from typing import Sequence

from bitflip.chipmap import ALL_VOLTAGES, FaultMapError, describe, export_official, resolve_maps
from bitflip.faults import MAX_SEED, FaultConfig
from common.cli import OneLineParser, bit_error_rate, from_field


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="zs_main.py faultmap", description="Measured SRAM fault maps (fault model chipmap).")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="{export,info}", parser_class=OneLineParser)
    e = sub.add_parser("export", help="write the official map of a seed as fmap_sa0/sa1_v_<V>.txt")
    e.add_argument("--seed", type=int, required=True, help="official fault seed (e.g. 50000)")
    e.add_argument("-ber", type=bit_error_rate, **from_field(FaultConfig, "ber"))
    e.add_argument("--out", required=True, help="chip folder to write")
    e.add_argument("--voltage", default="0", help="voltage label in the file names (default 0)")
    e.add_argument("-pos", type=int, **from_field(FaultConfig, "position"))
    e.add_argument("--bits", type=int, choices=range(2, 9), metavar="B", **from_field(FaultConfig, "bits"))
    i = sub.add_parser("info", help="voltages and measured BER of map folders / .npz files")
    i.add_argument("paths", nargs="+", metavar="PATH")
    i.add_argument("--voltage", default=ALL_VOLTAGES, help="only this voltage (default: all)")
    return p


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_or_exit_code(argv)
    if isinstance(args, int):
        return args
    try:
        if args.cmd == "export":
            if not 0 <= args.seed <= MAX_SEED or not -1 <= args.pos < args.bits:
                raise FaultMapError(f"--seed {args.seed} / -pos {args.pos}: need a seed in 0..{MAX_SEED} "
                                    f"and a position in -1..{args.bits - 1}")
            paths = export_official(args.out, args.seed, args.ber, args.voltage, args.bits, args.pos)
            print(f"official map of seed {args.seed} at ber={args.ber:g} -> {paths[0]}, {paths[1]}")
            print(describe(str(paths[0])))
            return 0
        for source in resolve_maps(args.paths, args.voltage):
            print(describe(source))
        return 0
    except FaultMapError as e:
        print(f"zs_main.py faultmap: error: {e}", file=sys.stderr)
        return 2

