"""The `energy` mode (SPEC §10): parameters, MACs, TWMA and energy saving (Eq. 6, Eq. 7) of a base
model with one or all NeuralFuse generators, at the dataset's input size. The model is eval/energy.py.

Example:
    python zs_main.py resnet18 energy cifar10 -G all                  # aligned text table
    python zs_main.py vgg19 energy cifar10 -G UNetL -ber 0.005 --json  # one JSON line (a list of rows)
"""
from __future__ import annotations

import json

from eval.energy import energy_rows, format_table


def run(cfgs) -> int:
    from common.runs import UsageError
    from generators import list_generators

    args = cfgs.args
    names = list_generators() if args.G == "all" else [args.G]
    try:
        rows = energy_rows(cfgs.run.arch, names, dataset=cfgs.data.dataset, saving=args.saving,
                           ber=cfgs.fault.ber)
    except ValueError as e:  # --saving or -ber outside its range
        raise UsageError(str(e)) from None
    print(json.dumps(rows) if args.json else format_table(rows), flush=True)
    return 0
