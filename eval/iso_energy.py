"""The iso-energy baseline: the milder undervolting that saves as much energy as NeuralFuse (docs/DESIGN.md §15).

NeuralFuse at bit error rate b saves ES = S(b) - cost(G) / cost(base) per inference (Eq. 6,
eval/energy.py), less than the per-access saving S(b) of undervolting alone, because the
generator runs at nominal voltage. A fair baseline without a generator spends the same energy: it
undervolts the base model only down to the voltage v whose per-access saving equals ES,

    1 - v^2 = ES          (dynamic energy ~ C V^2, v = V / Vmin)

and suffers the (lower) bit error rate of that voltage. The voltage <-> BER curve is eval/energy.py's
operating-point model: at 1% BER the paper's 0.83 Vmin; elsewhere a Gaussian cell-failure voltage
fitted through that point and through Vmin (BER 1/2^21). That curve is a model, not a paper
number, and so are the iso-energy BERs it gives (except where it returns 1%).

Example:
    iso_energy_ber(19.0)                               # (0.900 Vmin, BER 3.9e-4)
    iso_energy_rows("resnet18", ["ConvL"], ber=0.01)   # ES 19.0% at 1% BER: iso_ber 3.9e-4
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import Dict, List, Sequence, Tuple

from eval.energy import PAPER_BER, cell_failure_model, energy_rows

COSTS = ("twma", "mac")   # which Eq. gives the net saving: 6 (weight-memory accesses) or 7 (MACs)
MAX_ISO_BER = 0.5         # the model's domain ends where half the cells fail (v = the mean failure voltage)


def max_iso_saving() -> float:
    """The largest per-access saving (%) `iso_energy_ber` accepts: the one at BER MAX_ISO_BER."""
    mu, sigma = cell_failure_model()
    v = mu + sigma * NormalDist().inv_cdf(1.0 - MAX_ISO_BER)
    return 100.0 * (1.0 - v * v)


def iso_energy_ber(net_saving: float) -> Tuple[float, float]:
    """(v_rel, ber): the supply voltage (in units of Vmin) whose per-access saving is `net_saving` %
    and the bit error rate at that voltage under eval/energy.py's model.

    Accepts net_saving in [0, max_iso_saving()) (about [0, 53.5)); 0 is Vmin itself (BER 1/2^21), the
    upper end is BER 0.5. Raises ValueError outside it: a negative net saving means the generator
    costs more than undervolting saves (no iso point); a larger one lies beyond the model's curve.
    """
    top = max_iso_saving()
    if not 0.0 <= net_saving < top:
        raise ValueError(f"net energy saving {net_saving}% is outside [0, {top:.1f}): the voltage <-> BER "
                         f"model gives no voltage for it (negative: no undervolting needed; above: BER > "
                         f"{MAX_ISO_BER})")
    v = math.sqrt(1.0 - net_saving / 100.0)             # per-access energy (1 - S) ~ v^2
    mu, sigma = cell_failure_model()
    ber = NormalDist().cdf((mu - v) / sigma)            # P(cell failure voltage > v)
    return v, ber


def iso_energy_rows(arch: str, generators: Sequence[str], dataset: str = "cifar10", ber: float = PAPER_BER,
                    cost: str = "twma", ecc_overhead: float = 0.0) -> List[Dict]:
    """eval.energy.energy_rows for `generators` at `ber`, each with the iso-energy point of its net
    saving (Eq. 6 with cost 'twma', Eq. 7 with 'mac'): iso_v_rel, iso_ber; the plain model's
    accuracy at iso_ber (PA at that BER) is the baseline NeuralFuse's PA(NF) at `ber` should beat.
    A generator with a negative net saving has no iso point (iso_v_rel = iso_ber = None): the plain
    model at nominal voltage already spends less."""
    rows = energy_rows(arch, list(generators), dataset=dataset, ber=ber, ecc_overhead=ecc_overhead)
    return [with_iso_point(r, cost) for r in rows]


def with_iso_point(row: Dict, cost: str = "twma") -> Dict:
    """An eval.energy row annotated in place with iso_cost, iso_v_rel and iso_ber (both None where the
    net saving lies outside the model's domain: negative, or beyond BER MAX_ISO_BER); returns it."""
    if cost not in COSTS:
        raise ValueError(f"cost must be one of {', '.join(COSTS)}, got {cost!r}")
    es = row[f"es_{cost}"]
    row["iso_cost"] = cost
    row["iso_v_rel"], row["iso_ber"] = iso_energy_ber(es) if 0.0 <= es < max_iso_saving() else (None, None)
    return row


def rounded_ber(ber: float) -> float:
    """A BER to 3 significant digits (within 0.5% of it): what a user types after --eval-bers."""
    return float(f"{ber:.3g}")


def iso_eval_bers(rows: Sequence[Dict], ber: float) -> List[float]:
    """The --eval-bers list that measures the plain model at `ber` and at each row's iso-energy BER
    (rounded, distinct, highest first)."""
    isos = {rounded_ber(r["iso_ber"]) for r in rows if r.get("iso_ber") is not None}
    return sorted(isos | {ber}, reverse=True)
