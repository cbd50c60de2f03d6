"""The `energy` mode (docs/DESIGN.md §10): parameters, MACs, TWMA and energy saving (Eq. 6, Eq. 7) of a
base model with one or all NeuralFuse generators, at the dataset's input size. The model is eval/energy.py.

With --iso-energy it adds, per generator, the iso-energy point (eval/iso_energy.py, docs/DESIGN.md §15):
the milder voltage, and its BER, at which the unprotected base model saves as much energy as NeuralFuse
does (Eq. 6), then the --eval-bers list and a `transform_eval` command that measure the base model there
(its PA column); `report --compare` reads that evaluation back as the iso-energy row.

Example:
    python zs_main.py resnet18 energy cifar10 -G all                  # aligned text table
    python zs_main.py vgg19 energy cifar10 -G UNetL -ber 0.005 --json  # one JSON line (a list of rows)
    python zs_main.py resnet18 energy cifar10 -G all --ecc secded     # base memory with (72,64) SECDED
    python zs_main.py resnet18 energy cifar10 -G all --iso-energy -cp BASE.pt --G-path G.pt

With --ecc secded every access of the base model's weights reads 72 cells instead of 64
(ECC_OVERHEADS), which the table's header states and each row's ES includes (and so the iso-energy
point, which inverts that ES).
"""
from __future__ import annotations

import json
import shlex
from typing import Dict, List

from bitflip import FaultConfig
from common.cli import field_default, field_of, flag_of
from common.runs import UsageError
from config import Configs, EvalConfig, RunConfig
from eval.energy import ECC_OVERHEADS, energy_rows, format_energy_table
from eval.iso_energy import iso_eval_bers, with_iso_point

BASE_PLACEHOLDER = "BASE.pt"   # shown in the command when -cp was not given
GEN_PLACEHOLDER = "G.pt"       # shown when --G-path was not given: any generator trained on BASE.pt will do


def run(cfgs: Configs) -> int:
    ecfg = cfgs.energy
    try:
        rows = energy_rows(cfgs.run.arch, list(ecfg.generators), dataset=cfgs.data.dataset, saving=ecfg.saving,
                           ber=cfgs.fault.ber, ecc_overhead=ECC_OVERHEADS[cfgs.fault.ecc])
    except ValueError as e:  # --saving or -ber outside its range
        raise UsageError(str(e)) from None
    if ecfg.iso_energy:
        rows = [with_iso_point(r) for r in rows]
    if ecfg.json:
        print(json.dumps(rows), flush=True)
    else:
        print(format_energy_table(rows) + ("\n\n" + iso_energy_text(rows, cfgs) if ecfg.iso_energy else ""),
              flush=True)
    return 0


def _flag(cls: type, name: str) -> str:
    return flag_of(field_of(cls, name))


def eval_command(cfgs: Configs, bers: List[float]) -> str:
    """The `transform_eval` command line that evaluates -cp at `bers` with the same fault settings. It
    needs a generator (--testing-mode generator_base): the PA column (the base model alone) does not
    depend on which one."""
    fault = cfgs.fault
    argv = ["python", "zs_main.py", cfgs.run.arch, "transform_eval", cfgs.data.dataset,
            _flag(RunConfig, "checkpoint"), cfgs.run.checkpoint or BASE_PLACEHOLDER,
            _flag(EvalConfig, "testing_mode"), "generator_base",
            _flag(EvalConfig, "g_path"), cfgs.eval.g_path or GEN_PLACEHOLDER,
            _flag(FaultConfig, "model"), fault.model]
    for name in ("position", "bits", "ecc"):           # only what differs from the defaults
        if getattr(fault, name) != field_default(FaultConfig, name):
            argv += [_flag(FaultConfig, name), str(getattr(fault, name))]
    argv += [_flag(EvalConfig, "bers"), ",".join(f"{b:g}" for b in bers)]
    return shlex.join(argv)


def _iso_line(r: Dict, ber: float) -> str:
    if r["iso_ber"] is None:
        why = "net saving < 0: the plain model at nominal voltage spends less" if r["es_twma"] < 0 \
            else "net saving beyond the voltage <-> BER model"
        return f"{r['generator']:<9} {r['es_twma']:>7.2f}  no iso-energy point ({why})"
    same = " (= -ber: the generator costs nothing)" if abs(r["iso_ber"] - ber) <= 1e-9 * ber else ""
    return f"{r['generator']:<9} {r['es_twma']:>7.2f}  {r['iso_v_rel']:.3f} Vmin  {r['iso_ber']:.3g}{same}"


def iso_energy_text(rows: List[Dict], cfgs: Configs) -> str:
    """The --iso-energy section printed under the energy table: one line per generator, then what to run."""
    ber = cfgs.fault.ber
    bers = iso_eval_bers(rows, ber)
    lines = [f"Iso-energy points (Eq. 6; the voltage <-> BER curve of eval/energy.py, a model): the unprotected "
             f"{cfgs.run.arch} undervolted only as far as each generator's net saving ES allows",
             f"{'generator':<9} {'ES %':>7}  iso voltage  iso BER"]
    lines += [_iso_line(r, ber) for r in rows]
    lines += ["", "Measure the unprotected base model there (the PA column; any generator trained on the base "
                  "model will do):",
              f"  {_flag(EvalConfig, 'bers')} {','.join(f'{b:g}' for b in bers)}",
              f"  {eval_command(cfgs, bers)}",
              "then: python zs_main.py report --compare RUN_DIRS (the iso-energy rows read that evaluation)"]
    return "\n".join(lines)
