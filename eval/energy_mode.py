"""The `energy` mode (docs/DESIGN.md §10): parameters, MACs, TWMA and energy saving (Eq. 6, Eq. 7) of a
base model with one or all NeuralFuse generators, at the dataset's input size. The model is eval/energy.py.

Example:
    python zs_main.py resnet18 energy cifar10 -G all                  # aligned text table
    python zs_main.py vgg19 energy cifar10 -G UNetL -ber 0.005 --json  # one JSON line (a list of rows)
    python zs_main.py resnet18 energy cifar10 -G all --ecc secded     # base memory with (72,64) SECDED

With --ecc secded every access of the base model's weights reads 72 cells instead of 64
(ECC_OVERHEADS), which the table's header states and each row's ES includes.
"""
from __future__ import annotations

import json

from common.runs import UsageError
from config import Configs
from eval.energy import ECC_OVERHEADS, energy_rows, format_energy_table


def run(cfgs: Configs) -> int:
    ecfg = cfgs.energy
    try:
        rows = energy_rows(cfgs.run.arch, list(ecfg.generators), dataset=cfgs.data.dataset, saving=ecfg.saving,
                           ber=cfgs.fault.ber, ecc_overhead=ECC_OVERHEADS[cfgs.fault.ecc])
    except ValueError as e:  # --saving or -ber outside its range
        raise UsageError(str(e)) from None
    print(json.dumps(rows) if ecfg.json else format_energy_table(rows), flush=True)
    return 0
