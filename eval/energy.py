"""SRAM energy saving of NeuralFuse (paper §4.4, Eq. 6-7, App. C); the model is explained in docs/DESIGN.md §10.

Per inference ES = S - cost(generator) / cost(base) in %, with cost = TWMA (Eq. 6, Table 2) or MACs (Eq. 7,
from eval/macs.py). TWMA models the paper's SCALE-Sim runs analytically: weights x ceil(output pixels / 32)
per conv / transposed-conv / linear layer, with SCALE-Sim's output sizes, summed and divided by 8 (Table 6's
unit). S, the per-access saving, comes from the operating point of a BER: the paper's 1% point (S = 30.63%,
fitted to Table 2) or, for other BERs, a Gaussian cell-failure model labelled "not a paper number".

SECDED (bitflip/ecc.py, docs/DESIGN.md §15): protecting the low-voltage weight memory with a (72,64)
code makes every access read 72 cells instead of 64, `ecc_overhead` = 8/64 = 12.5% more energy, so
the per-access saving against the nominal-voltage, ECC-free baseline shrinks to
S_ecc = 1 - (1 + o)(1 - S) (30.63% -> 21.96% at 1% BER). The generator's weights sit in nominal-
voltage memory without ECC (no errors to correct there), so its cost is unchanged.

Example:
    python zs_main.py resnet18 energy cifar10 -G all            # aligned table, S from -ber 0.01
    python zs_main.py vgg11 energy cifar10 -G ConvL --saving 25 --json
    python -m eval.energy                                       # our TWMA of every model (Table 6)
    energy_rows("resnet18", ["ConvL"])[0]["es_twma"]            # 19.01 (Table 2: 19.0)
"""
from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist
from typing import Dict, List, Optional, Sequence

ARRAY_ROWS = 32               # output-stationary systolic array rows (paper: 32x32 array in SCALE-Sim)
WEIGHTS_PER_ACCESS = 8        # Table 6's unit: one access per 8 weight reads (cancels in ES)
SRAM_BITS = 256 * 1024 * 8    # weight SRAM of the paper's simulated accelerator: 256 KB
PAPER_BER = 0.01              # the paper's operating point (Table 2)
PAPER_SAVING = 30.63          # % per access at 1% BER: fitted to Table 2 (docs/DESIGN.md §10); v = 0.8329 Vmin
BER_AT_VMIN = 1.0 / SRAM_BITS  # assumption: Vmin = lowest voltage with (at most) one failing cell
WEIGHT_KINDS = ("conv", "deconv", "linear")  # eval.macs layer kinds that read weights
ECC_OVERHEAD = 8 / 64         # SECDED (72,64): 8 check cells read with every 64 data cells
ECC_OVERHEADS = {"none": 0.0, "secded": ECC_OVERHEAD}   # --ecc name -> extra cells read per access


# ----------------------------------------------------------------------------- operating points
def _z(ber: float) -> float:
    """Standard-normal quantile of 1 - BER: how many sigmas above the mean failure voltage."""
    return NormalDist().inv_cdf(1.0 - ber)


def cell_failure_model() -> tuple:
    """(mu, sigma) in units of Vmin of a Gaussian cell-failure voltage through the two anchors."""
    v_paper = math.sqrt(1.0 - PAPER_SAVING / 100.0)
    sigma = (1.0 - v_paper) / (_z(BER_AT_VMIN) - _z(PAPER_BER))
    return v_paper - sigma * _z(PAPER_BER), sigma


def operating_point(ber: float) -> Dict:
    """{'ber', 'v_rel' (V / Vmin), 'saving' (S, % less energy per SRAM access), 'source'}."""
    if not 0.0 < ber < 1.0:
        raise ValueError(f"bit error rate {ber} is outside (0, 1)")
    if math.isclose(ber, PAPER_BER, rel_tol=1e-9):
        v, source = math.sqrt(1.0 - PAPER_SAVING / 100.0), "paper (App. C, 0.83 Vmin; S fitted to Table 2)"
    else:
        mu, sigma = cell_failure_model()
        v = min(1.0, mu + sigma * _z(ber))  # at most Vmin: no negative saving
        source = "model: Gaussian cell-failure voltage through the 1% point and Vmin (not a paper number)"
    return {"ber": ber, "v_rel": v, "saving": 100.0 * (1.0 - v * v), "source": source}


# ----------------------------------------------------------------------------- TWMA from layers
def scalesim_conv_out(h: int, k: int, s: int, p: int) -> int:
    """SCALE-Sim's output size of a conv over the padded input h + 2p: ceil((h + 2p - k + s) / s)."""
    return -(-(h + 2 * p - k + s) // s)


def deconv_out(h: int, k: int, s: int, p: int) -> int:
    """A transposed conv entered as a stride-1 conv over the s-times upsampled input, padded by p."""
    return h * s + 2 * p - k + 1


def output_positions(rec: Dict) -> int:
    """Output pixels per filter of one `eval.macs.layer_stats` record, as SCALE-Sim sizes them."""
    if rec["kind"] == "linear":
        return rec["out_positions"]  # 1 for a (B, features) input
    (h, w), (kh, kw), (sh, sw), (ph, pw) = rec["in_shape"][1:], rec["kernel"], rec["stride"], rec["padding"]
    size = scalesim_conv_out if rec["kind"] == "conv" else deconv_out
    return size(h, kh, sh, ph) * size(w, kw, sw, pw)


def weight_reads(rec: Dict, rows: int = ARRAY_ROWS) -> int:
    """Weight-SRAM reads of one layer call: every row fold streams all of the layer's weights."""
    if rec["kind"] not in WEIGHT_KINDS:
        return 0
    return rec["weights"] * -(-output_positions(rec) // rows)


def twma(records: Sequence[Dict], rows: int = ARRAY_ROWS) -> float:
    """Total weight-memory accesses of one inference, in Table 6's unit (reads / 8)."""
    return sum(weight_reads(r, rows) for r in records) / WEIGHTS_PER_ACCESS


def model_costs(kind: str, name: str, image_size: int, num_classes: int = 10) -> Dict:
    """{'params', 'macs', 'conv_macs', 'twma'} of base model (kind 'base') or generator 'gen' `name`.

    Cached per (kind, name, size, classes). Raises common.registry.UnknownName for a name not in the
    models/ or generators/ registry.
    """
    return dict(_costs(kind, name, image_size, num_classes if kind == "base" else 0))


@lru_cache(maxsize=None)
def _costs(kind: str, name: str, image_size: int, num_classes: int) -> Dict:
    from eval.macs import layer_stats
    if kind == "base":
        from models import get_model
        net = get_model(name, num_classes)
    else:
        from generators import get_generator
        net = get_generator(name, input_size=image_size)  # UIP is tied to the input size
    records = layer_stats(net, (3, image_size, image_size), device="meta")
    return {"params": sum(p.numel() for p in net.parameters()),
            "macs": sum(r["macs"] for r in records),
            "conv_macs": sum(r["conv_macs"] for r in records),
            "twma": twma(records)}


# ----------------------------------------------------------------------------- Eq. 6 / Eq. 7
def access_saving(saving: float, ecc_overhead: float = 0.0) -> float:
    """Per-access saving (%) of the low-voltage memory against the nominal, ECC-free baseline when each
    access also reads `ecc_overhead` (a fraction: 0.125 for SECDED) more cells: 100·(1 - (1+o)(1 - S))."""
    if not ecc_overhead >= 0.0:
        raise ValueError(f"ecc_overhead {ecc_overhead} must be >= 0 (0.125 for (72,64) SECDED)")
    return 100.0 * (1.0 - (1.0 + ecc_overhead) * (1.0 - saving / 100.0))


def energy_saving(saving: float, cost_generator: float, cost_base: float, ecc_overhead: float = 0.0) -> float:
    """ES in %: the base model's accesses cost S% less (less the ECC overhead), the generator's run at
    full energy."""
    return access_saving(saving, ecc_overhead) - 100.0 * cost_generator / cost_base


def energy_rows(arch: str, generators: List[str], dataset: str = "cifar10", saving: Optional[float] = None,
                ber: float = PAPER_BER, ecc_overhead: float = 0.0) -> List[Dict]:
    """One dict per generator: the generator's params / macs / conv_macs / twma, the base model's
    (base_params, base_macs, base_conv_macs, base_twma), es_twma (Eq. 6) and es_mac (Eq. 7) in %,
    and the operating point used (ber, v_rel, saving). `saving` (%) overrides the one `ber` picks.
    `ecc_overhead` (ECC_OVERHEAD for SECDED) charges the base model's accesses for the check cells;
    the row then also has access_saving, the per-access saving net of that overhead.
    """
    from datasets import get_dataset_info
    info = get_dataset_info(dataset)
    point = operating_point(ber)
    if saving is not None:
        if not 0.0 <= saving < 100.0:
            raise ValueError(f"per-access saving {saving}% is outside [0, 100)")
        point = {**point, "saving": float(saving), "v_rel": math.sqrt(1.0 - saving / 100.0),
                 "source": "given (--saving)"}
    base = model_costs("base", arch, info.image_size, info.num_classes)
    rows = []
    for g in generators:
        gen = model_costs("gen", g, info.image_size)
        rows.append({"base": arch, "generator": g, "dataset": dataset, "image_size": info.image_size,
                     **gen, **{f"base_{k}": v for k, v in base.items()},
                     "es_twma": energy_saving(point["saving"], gen["twma"], base["twma"], ecc_overhead),
                     "es_mac": energy_saving(point["saving"], gen["macs"], base["macs"], ecc_overhead),
                     "ber": ber, "v_rel": point["v_rel"], "saving": point["saving"],
                     "saving_source": point["source"], "ecc_overhead": ecc_overhead,
                     "access_saving": access_saving(point["saving"], ecc_overhead)})
    return rows


def format_energy_table(rows: List[Dict]) -> str:
    """Plain aligned text: the base model once, then one line per generator."""
    if not rows:
        return ""
    r0 = rows[0]
    head = (f"{r0['base']} on {r0['dataset']} ({r0['image_size']} px) | BER {r0['ber']:g} -> "
            f"{r0['v_rel']:.3f} Vmin, per-access saving S = {r0['saving']:.2f}%\nS source: {r0['saving_source']}")
    if r0.get("ecc_overhead"):
        head += (f"\nSECDED: {100 * r0['ecc_overhead']:.1f}% more cells per access -> per-access saving "
                 f"{r0['access_saving']:.2f}%")
    cols = ["model", "params", "MACs (ptflops)", "conv MACs", "TWMA", "ES Eq.6 TWMA %", "ES Eq.7 MAC %"]
    table = [cols, [r0["base"], f"{r0['base_params']:,}", f"{r0['base_macs']:,}",
                    f"{r0['base_conv_macs']:,}", f"{r0['base_twma']:,.0f}", "-", "-"]]
    table += [[r["generator"], f"{r['params']:,}", f"{r['macs']:,}", f"{r['conv_macs']:,}",
               f"{r['twma']:,.0f}", f"{r['es_twma']:.2f}", f"{r['es_mac']:.2f}"] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(cols))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
             for line in table]
    return "\n".join([head] + lines)


def _main() -> None:
    """Our TWMA for every CIFAR base model and generator at 32 px: python -m eval.energy"""
    from generators import list_generators
    from models import list_models
    for kind, names in (("base", list_models(input_size=32)), ("gen", list_generators())):
        for n in names:
            c = model_costs(kind, n, 32)
            print(f"{n:10s} TWMA {c['twma']:>12,.0f}  params {c['params']:>11,}  MACs {c['macs']:>14,}")


if __name__ == "__main__":
    _main()
