"""The paper's reported numbers (arXiv 2306.16869, NeurIPS 2024 camera-ready) as data, for side-by-side reports
(docs/DESIGN.md §4, §10, §11).

Transcribed tables: base models' CA and PA (Tables 12-15 headers), NeuralFuse's CA(NF) / PA(NF) / RP for
every base model × generator × BER of CIFAR-10 (Table 12), GTSRB (Table 13), ImageNet-10 (Table 14) and
CIFAR-100 (Table 15), restricted-access transfer on CIFAR-10 (Table 1: generators trained at 1.5% BER on a
source model, tested on a target), the λ ablation (Table 10) and the energy saving ES (Table 2).
All accuracies are percent; (mean, std) pairs are over the paper's 10 perturbed models, `official`
faults (docs/DESIGN.md §5), 8-bit weights, any bit position, full test split, EOPM with N = 10 and λ = 5.
RP is the paper's own (rounded from unrounded means, so it can differ from PA(NF) − PA by 0.1).
Keys use our registry names (models/, generators/, datasets/); ImageNet-10 uses the Py model variants.

Example:
    paper_numbers("resnet18", "cifar10", "ConvL", 0.01)
    # {'CA': 92.6, 'PA_mean': 38.9, 'PA_std': 12.4, 'CA_NF': 89.8, 'PA_NF_mean': 87.8, 'PA_NF_std': 1.7,
    #  'RP': 48.8, 'lam': 5.0, 'n_models': 10, 'trained_on': 'resnet18/cifar10', 'ES': 19.0, 'source': ...}
"""
from __future__ import annotations

import math
from typing import Dict, Iterable, Optional, Tuple

NF = Tuple[float, float, float, float]          # CA(NF), PA(NF) mean, PA(NF) std, RP

PAPER_FAULT_MODEL = "official"   # the released code's fault model produced every number here
PAPER_SEEDS = 10                 # perturbed models per reported mean ± std
PAPER_BITS = 8                   # weight precision of every reported model (also what results without
                                 # a recorded precision, written before --bits existed, used)
PAPER_N_MODELS = 10              # EOPM's N for every reported generator
DEFAULT_LAMBDA = 5.0             # EOPM's λ for every reported generator but the λ ablation
TRANSFER_TRAIN_BER = 0.015       # Table 1's generators were trained at 1.5% BER on the source model
TRANSFER_DATASET = "cifar10"
ENERGY_SAVING_BER = 0.01         # Table 2's operating point (supply ≈ 0.83·Vmin)
BERS = {"cifar10": (0.01, 0.005), "gtsrb": (0.01, 0.005), "imagenet224": (0.005,),
        "cifar100": (0.01, 0.005, 0.0035)}

# Base models: CA, then PA (mean ± std) at each of BERS[dataset], in that order (headers of Tables 12-15).
_BASE = {
    "cifar10": """resnet18 92.6 38.9±12.4 70.1±11.6 | resnet50 92.6 26.1±9.4 61.0±10.3 | vgg11 88.4 42.2±11.6 63.6±9.3
                  vgg16 90.3 35.7±7.9 66.6±8.1 | vgg19 90.5 36.0±12.0 64.2±12.4""",
    "gtsrb": """resnet18 95.5 36.9±16.0 75.2±12.7 | resnet50 95.0 29.5±16.9 74.0±13.0 | vgg11 91.9 34.9±12.4 64.9±10.8
                vgg16 95.2 15.1±6.8 58.8±8.9 | vgg19 95.5 36.6±6.8 69.1±11.1""",
    "imagenet224": """resnet18Py 92.2 72.3±7.0 | resnet50Py 89.8 39.4±11 | vgg11Py 91.6 47.8±13 | vgg16Py 94.6 38.4±17
                      vgg19Py 92.4 37.2±11""",
    "cifar100": """resnet18 73.7 4.6±2.9 20.9±7.4 31.4±7.6 | resnet50 73.5 3.0±1.8 21.3±7.0 35.7±8.6
                   vgg11 64.8 8.2±5.7 23.9±9.4 31.3±10 | vgg16 67.8 7.0±3.5 22.4±7.0 31.1±7.2
                   vgg19 67.8 10.6±4.3 34.0±9.6 42.1±9.4""",
}

# With NeuralFuse: "arch generator", then CA(NF) PA(NF) RP at each of BERS[dataset] (Tables 12-15).
_WITH_NF = {
    "cifar10": """
resnet18 ConvL 89.8 87.8±1.7 48.8  90.4 87.9±2.2 17.8 | resnet18 ConvS 88.2 59.5±11 20.6  91.7 78.4±8.3 8.3
resnet18 DeConvL 89.6 88.5±0.8 49.6  90.2 90.0±0.2 19.9 | resnet18 DeConvS 82.9 68.8±6.4 29.9  84.1 79.9±3.6 9.8
resnet18 UNetL 86.6 84.6±0.8 45.6  89.7 86.3±2.4 16.2 | resnet18 UNetS 84.4 68.8±6.0 29.8  90.9 80.7±5.8 10.7
resnet50 ConvL 85.5 53.2±22 27.1  90.3 86.5±3.2 25.5 | resnet50 ConvS 85.2 34.6±14 8.5  90.8 73.3±8.7 12.3
resnet50 DeConvL 87.4 63.3±21 37.2  89.5 87.2±2.5 26.2 | resnet50 DeConvS 82.4 42.2±17 16.1  90.3 75.5±8.1 14.5
resnet50 UNetL 86.2 75.5±12 49.4  89.9 83.9±3.6 22.9 | resnet50 UNetS 77.3 56.2±19 30.1  89.7 76.1±7.2 15.1
vgg11 ConvL 89.6 87.2±2.9 45.1  89.8 87.0±1.3 23.3 | vgg11 ConvS 84.9 66.3±7.5 24.1  88.2 74.5±5.7 10.9
vgg11 DeConvL 89.3 87.2±2.6 45.0  89.6 86.9±1.1 23.2 | vgg11 DeConvS 85.6 68.2±7.1 26.0  88.3 75.7±4.6 12.1
vgg11 UNetL 87.1 83.6±1.3 41.4  88.0 82.4±1.8 18.8 | vgg11 UNetS 85.5 72.7±4.6 30.5  88.1 75.8±4.3 12.2
vgg16 ConvL 90.1 86.0±6.2 50.3  90.2 88.5±0.9 21.9 | vgg16 ConvS 87.4 59.6±12 23.9  89.9 77.8±4.8 11.1
vgg16 DeConvL 89.7 85.5±6.8 49.8  89.7 88.2±1.0 21.4 | vgg16 DeConvS 86.8 66.5±11 30.8  90.0 78.4±4.7 11.8
vgg16 UNetL 87.4 83.4±4.4 47.7  89.0 86.2±1.5 19.6 | vgg16 UNetS 87.4 71.2±8.2 35.5  89.0 80.2±3.5 13.7
vgg19 ConvL 89.8 77.7±19 41.7  90.4 88.1±1.8 23.9 | vgg19 ConvS 87.3 52.7±17 16.7  89.6 74.5±9.0 10.3
vgg19 DeConvL 86.3 78.4±18 42.4  90.4 88.5±1.4 24.3 | vgg19 DeConvS 86.5 58.2±18 22.2  89.7 75.2±8.6 11.0
vgg19 UNetL 86.3 82.1±4.8 46.0  89.1 85.0±2.7 20.8 | vgg19 UNetS 86.3 66.4±13 30.4  89.2 77.1±7.3 12.9""",
    "gtsrb": """
resnet18 ConvL 95.7 91.1±4.7 54.2  93.4 89.5±1.9 14.3 | resnet18 ConvS 94.4 68.6±12 31.7  94.8 87.7±4.2 12.4
resnet18 DeConvL 95.6 91.3±4.3 54.4  95.4 93.4±1.1 18.1 | resnet18 DeConvS 95.7 78.1±9.1 41.2  95.8 90.1±3.3 14.9
resnet18 UNetL 96.2 93.8±1.0 56.9  96.2 93.5±1.6 18.3 | resnet18 UNetS 95.9 85.1±6.9 48.2  95.5 91.4±2.8 16.2
resnet50 ConvL 95.6 71.6±20 42.1  94.6 90.6±3.7 16.6 | resnet50 ConvS 94.8 50.5±22 21.0  95.4 84.5±8.5 10.5
resnet50 DeConvL 94.9 71.6±21 42.0  94.7 91.6±2.9 17.6 | resnet50 DeConvS 93.0 56.4±17 26.9  94.6 87.4±5.9 13.5
resnet50 UNetL 94.5 80.6±15 51.1  96.5 93.7±2.3 19.7 | resnet50 UNetS 94.7 64.7±22 35.2  95.9 90.6±4.8 16.7
vgg11 ConvL 94.8 85.7±7.2 50.9  93.9 92.6±0.7 27.7 | vgg11 ConvS 91.1 62.2±11 27.3  90.9 80.5±3.5 15.7
vgg11 DeConvL 95.0 84.6±7.6 49.7  93.6 91.9±0.6 27.1 | vgg11 DeConvS 92.4 67.5±11 32.6  92.3 83.1±3.7 18.2
vgg11 UNetL 92.2 83.2±6.0 48.3  94.8 90.6±1.7 25.7 | vgg11 UNetS 94.7 73.4±10 38.5  94.6 88.9±2.2 24.1
vgg16 ConvL 96.3 72.4±12 57.3  95.6 93.2±1.8 34.4 | vgg16 ConvS 94.1 39.8±13 24.6  94.3 82.2±6.2 23.4
vgg16 DeConvL 96.4 72.0±12 56.9  95.6 93.1±2.0 34.3 | vgg16 DeConvS 93.8 50.9±13 35.8  95.1 84.0±5.3 25.2
vgg16 UNetL 95.8 78.6±11 63.5  96.0 92.8±2.0 34.0 | vgg16 UNetS 94.3 63.3±14 48.1  95.4 87.8±3.6 29.0
vgg19 ConvL 96.0 88.3±7.2 51.7  95.6 93.4±2.1 24.2 | vgg19 ConvS 93.8 69.0±14 32.4  94.9 87.0±4.4 17.8
vgg19 DeConvL 95.4 87.2±7.5 50.6  95.5 92.4±2.2 23.3 | vgg19 DeConvS 94.5 73.1±12 36.5  95.5 88.8±3.7 19.7
vgg19 UNetL 95.4 88.2±6.7 51.7  94.9 91.7±2.5 22.6 | vgg19 UNetS 94.6 80.6±9.0 44.1  96.5 90.8±3.4 21.6""",
    "imagenet224": """
resnet18Py ConvL 94.0 88.0±2.0 15.7 | resnet18Py ConvS 91.8 83.6±4.1 11.3 | resnet18Py DeConvL 94.0 89.2±1.3 16.9
resnet18Py DeConvS 92.8 87.5±2.3 15.2 | resnet18Py UNetL 94.0 88.1±1.4 15.8 | resnet18Py UNetS 93.2 86.4±2.2 14.1
resnet50Py ConvL 92.2 80.0±5.8 40.6 | resnet50Py ConvS 91.8 65.0±11 25.6 | resnet50Py DeConvL 93.0 79.4±5.9 40.0
resnet50Py DeConvS 93.2 70.9±9.1 31.5 | resnet50Py UNetL 92.2 80.5±5.8 41.1 | resnet50Py UNetS 92.4 73.6±8.9 34.2
vgg11Py ConvL 92.0 86.1±3.7 38.3 | vgg11Py ConvS 89.4 66.4±7.1 18.6 | vgg11Py DeConvL 91.0 86.0±3.0 38.2
vgg11Py DeConvS 89.0 72.5±7.8 24.7 | vgg11Py UNetL 92.4 83.0±3.5 35.2 | vgg11Py UNetS 86.2 73.5±6.0 25.7
vgg16Py ConvL 90.8 77.1±11 38.7 | vgg16Py ConvS 90.2 60.2±14 21.8 | vgg16Py DeConvL 91.2 77.2±11 38.8
vgg16Py DeConvS 90.0 62.3±14 23.9 | vgg16Py UNetL 90.6 81.1±5.9 42.7 | vgg16Py UNetS 86.4 72.3±8.8 33.9
vgg19Py ConvL 91.4 75.5±8.8 38.3 | vgg19Py ConvS 88.8 56.5±13 19.3 | vgg19Py DeConvL 91.0 75.9±8.9 38.7
vgg19Py DeConvS 88.8 64.0±11 26.8 | vgg19Py UNetL 89.4 77.9±6.1 40.7 | vgg19Py UNetS 87.6 65.9±10 28.7""",
    "cifar100": """
resnet18 ConvL 54.8 11.0±7.7 6.4  65.2 39.0±7.1 18.1  69.4 42.9±6.2 11.4
resnet18 ConvS 49.7 4.2±2.2 -0.4  70.0 24.5±7.6 3.6  72.1 35.1±7.3 3.7
resnet18 DeConvL 55.2 11.9±8.2 7.3  66.3 38.2±6.9 17.3  69.2 42.9±5.5 11.4
resnet18 DeConvS 32.7 4.0±2.2 -0.6  68.2 25.9±6.8 5  71.6 35.8±5.5 4.4
resnet18 UNetL 50.6 14.5±8.9 10.0  66.2 40.1±6.4 19.2  70.3 46.3±5.5 14.9
resnet18 UNetS 26.8 4.6±2.5 -0.0  67.1 28.8±6.8 7.9  70.9 38.3±6.4 6.9
resnet50 ConvL 63.5 3.2±1.7 0.1  68.4 28.8±6.7 7.6  72.0 40.8±7.5 5.1
resnet50 ConvS 65.5 3.2±1.6 0.1  71.9 23.1±6.9 1.9  73.0 37.4±8.0 1.7
resnet50 DeConvL 59.6 3.2±1.7 0.2  68.1 28.6±7.0 7.4  71.7 41.7±7.7 6.1
resnet50 DeConvS 61.1 3.2±1.7 0.1  70.3 25.0±6.7 3.7  72.8 38.9±7.9 3.3
resnet50 UNetL 39.0 5.0±1.7 1.9  66.6 36.5±6.2 15.3  70.8 45.3±6.7 9.6
resnet50 UNetS 47.7 3.4±1.8 0.3  69.1 26.1±6.6 4.8  72.6 39.6±7.8 3.9
vgg11 ConvL 58.3 19.7±11 11.5  63.1 38.8±9.3 15.0  63.9 42.4±9.0 11.1
vgg11 ConvS 56.6 10.4±7.4 2.2  62.7 27.9±10 4.0  63.9 41.8±8.3 10.5
vgg11 DeConvL 60.3 21.2±11 13.0  63.9 40.0±9.0 16.2  64.0 42.8±9.1 11.5
vgg11 DeConvS 58.3 11.8±7.9 3.5  61.9 29.8±9.9 5.9  63.5 36.1±10 4.8
vgg11 UNetL 51.1 22.1±8.2 13.9  61.8 37.8±9.0 13.9  63.5 40.9±9.3 9.6
vgg11 UNetS 51.9 13.1±7.9 4.9  61.7 29.8±9.7 6.0  63.8 35.7±9.9 4.5
vgg16 ConvL 51.4 19.2±6.0 12.6  61.8 41.1±5.6 18.7  64.9 44.9±5.3 13.8
vgg16 ConvS 44.3 6.7±2.3 0.1  63.8 27.5±6.8 5.1  66.0 36.3±6.1 5.1
vgg16 DeConvL 53.1 20.8±6.2 14.2  62.8 42.1±5.5 19.8  65.0 46.6±5.2 15.5
vgg16 DeConvS 23.5 4.8±1.7 -1.8  62.1 29.9±6.7 7.5  64.9 38.1±6.3 7.0
vgg16 UNetL 50.2 25.3±1.7 18.7  61.7 41.3±5.0 18.9  64.8 46.8±4.6 15.7
vgg16 UNetS 27.7 9.9±2.1 3.3  61.6 31.3±6.3 8.9  65.0 39.8±5.9 8.7
vgg19 ConvL 59.4 29.2±8.1 18.6  65.6 46.5±6.8 12.5  66.9 49.2±7.4 7.0
vgg19 ConvS 63.7 14.4±5.1 3.8  66.6 38.3±6.8 4.2  67.7 45.3±8.5 3.2
vgg19 DeConvL 60.1 29.6±8.5 19.0  65.7 46.9±7.1 12.9  67.3 49.8±7.6 7.6
vgg19 DeConvS 60.9 16.1±6.0 5.6  66.5 39.0±3.7 5.0  67.7 45.7±8.4 3.6
vgg19 UNetL 58.7 30.2±8.2 19.6  65.5 46.9±6.5 12.9  67.4 50.0±7.5 7.9
vgg19 UNetS 59.1 18.0±6.2 7.4  66.3 40.1±8.0 6.1  67.5 46.6±8.4 4.5""",
}

# Table 1 (CIFAR-10, restricted access): "source>target generator", then CA(NF) PA(NF) RP at 1% and 0.5%
# (the paper prints one CA(NF) per pair; it is repeated at 0.5% here).
_TRANSFER = """
resnet18>resnet18 ConvL 89.8 89.0±0.5 50.1  89.8 89.6±0.2 19.5 | resnet18>resnet18 UNetL 85.8 85.2±0.5 46.3  85.8 85.7±0.2 15.6
resnet18>resnet50 ConvL 89.2 36.1±18 10.0  89.2 74.1±10 13.1 | resnet18>resnet50 UNetL 84.4 38.9±16 12.8  84.4 72.7±4.6 11.7
resnet18>vgg11 ConvL 86.3 59.2±10 17.0  86.3 78.9±4.9 15.3 | resnet18>vgg11 UNetL 82.3 69.8±7.5 27.6  82.3 77.0±4.0 13.4
resnet18>vgg16 ConvL 89.4 62.2±18 26.5  89.4 83.4±5.5 16.8 | resnet18>vgg16 UNetL 84.7 68.9±14 33.2  84.7 80.5±5.9 13.9
resnet18>vgg19 ConvL 89.8 49.9±23 13.9  89.8 81.8±8.5 17.6 | resnet18>vgg19 UNetL 85.0 55.1±17 19.1  85.0 78.5±6.8 14.3
vgg19>resnet18 ConvL 88.9 62.6±13 23.7  88.9 84.2±7.2 14.1 | vgg19>resnet18 UNetL 85.0 72.3±11 33.4  85.0 82.1±2.2 12.0
vgg19>resnet50 ConvL 88.8 37.9±18 11.8  88.8 76.6±7.8 15.6 | vgg19>resnet50 UNetL 85.2 46.7±17 20.6  85.2 78.3±3.7 17.3
vgg19>vgg11 ConvL 88.9 76.0±6.1 33.8  88.9 85.9±2.6 22.3 | vgg19>vgg11 UNetL 85.5 81.9±3.9 39.7  85.5 84.8±0.5 21.2
vgg19>vgg16 ConvL 89.0 76.5±9.0 40.8  89.0 87.7±0.7 21.1 | vgg19>vgg16 UNetL 85.9 79.2±7.5 43.5  85.9 84.7±0.9 18.1
vgg19>vgg19 ConvL 89.1 80.2±12 44.2  89.1 88.8±0.4 24.6 | vgg19>vgg19 UNetL 86.3 84.3±1.2 48.3  86.3 85.9±0.3 21.7"""

# Table 10 (ConvL, CIFAR-10, 1% BER): "arch λ", then CA(NF) PA(NF) RP.
_LAMBDA = """resnet18 10 90.1 88.0±1.7 49.1 | resnet18 5 89.8 87.8±1.7 48.8 | resnet18 1 90.0 84.2±3.8 45.3
resnet18 0.1 91.6 65.7±9.3 26.8 | resnet18 0.01 92.2 43.6±13 4.7 | vgg19 10 89.6 77.9±19 41.9
vgg19 5 89.8 77.7±19 41.7 | vgg19 1 89.9 73.1±19 37.1 | vgg19 0.1 89.1 51.2±16 15.2 | vgg19 0.01 90.2 36.8±12 0.8"""
LAMBDA_SETTING = ("cifar10", "ConvL", 0.01)

# Energy saving ES (%) at 1% BER, Eq. 6 (TWMA-based), paper Table 2 (docs/DESIGN.md §10); CIFAR-10, 32 px.
ENERGY_SAVING: Dict[str, Dict[str, float]] = {
    "resnet18": {"ConvL": 19.0, "ConvS": 29.1, "DeConvL": 21.2, "DeConvS": 27.5, "UNetL": 24.0, "UNetS": 28.9},
    "resnet50": {"ConvL": 25.4, "ConvS": 29.9, "DeConvL": 26.4, "DeConvS": 29.2, "UNetL": 27.7, "UNetS": 29.9},
    "vgg11": {"ConvL": 6.6, "ConvS": 27.5, "DeConvL": 11.2, "DeConvS": 24.1, "UNetL": 17.1, "UNetS": 27.2},
    "vgg16": {"ConvL": 17.1, "ConvS": 28.9, "DeConvL": 19.7, "DeConvS": 27.0, "UNetL": 23.0, "UNetS": 28.7},
    "vgg19": {"ConvL": 20.3, "ConvS": 29.7, "DeConvL": 22.3, "DeConvS": 27.8, "UNetL": 24.8, "UNetS": 29.1},
}


def _records(text: str) -> Iterable[list]:
    for line in text.split("\n"):
        for rec in line.split("|"):
            if rec.strip():
                yield rec.split()


def _nf(cells: list) -> NF:
    pa, std = cells[1].split("±")
    return float(cells[0]), float(pa), float(std), float(cells[2])


def _per_ber(cells: list, bers: Tuple[float, ...]) -> Dict[float, NF]:
    return {ber: _nf(cells[3 * i:3 * i + 3]) for i, ber in enumerate(bers)}


# (dataset, arch) -> (CA, {BER: (PA mean, PA std)})
BASE: Dict[Tuple[str, str], Tuple[float, Dict[float, Tuple[float, float]]]] = {
    (ds, r[0]): (float(r[1]), {b: tuple(map(float, c.split("±"))) for b, c in zip(BERS[ds], r[2:])})
    for ds, text in _BASE.items() for r in _records(text)}
# (dataset, arch, generator) -> {BER: NF}
WITH_NF: Dict[Tuple[str, str, str], Dict[float, NF]] = {
    (ds, r[0], r[1]): _per_ber(r[2:], BERS[ds]) for ds, text in _WITH_NF.items() for r in _records(text)}
# (source arch, target arch, generator) -> {BER: NF}, CIFAR-10, generator trained at TRANSFER_TRAIN_BER
TRANSFER: Dict[Tuple[str, str, str], Dict[float, NF]] = {
    (*r[0].split(">"), r[1]): _per_ber(r[2:], BERS["cifar10"]) for r in _records(_TRANSFER)}
# (arch, λ) -> NF at LAMBDA_SETTING
LAMBDA_ABLATION: Dict[Tuple[str, float], NF] = {(r[0], float(r[1])): _nf(r[2:]) for r in _records(_LAMBDA)}


def _ber_key(ber: Optional[float], bers: Iterable[float]) -> Optional[float]:
    """The BER in `bers` equal to `ber` (floats from JSON: compare with a tolerance)."""
    return next((b for b in bers if ber is not None and math.isclose(ber, b, rel_tol=1e-6)), None)


def paper_numbers(arch: str, dataset: str, generator: Optional[str], ber: Optional[float],
                  fault_model: str = PAPER_FAULT_MODEL, lam: Optional[float] = None,
                  trained_on: Optional[str] = None) -> Optional[Dict]:
    """The paper's numbers for one setting, or None when it reports nothing for it.

    Keys present only when the paper has them: CA, PA_mean, PA_std, then with a generator CA_NF,
    PA_NF_mean, PA_NF_std, RP and the paper's settings for them (lam, n_models, trained_on as
    'arch/dataset', train_ber for Table 1), ES (%, Table 2), and always `source`. `generator` None = base
    model alone; `ber` None = clean evaluation (CA only). `trained_on` ('arch/dataset', as results.json
    records it) other than `arch/dataset` looks up Table 1; `lam` other than 5 looks up Table 10.
    """
    if (dataset, arch) not in BASE:
        return None
    ca, pa = BASE[(dataset, arch)]
    out: Dict = {"CA": ca}
    sources = [f"{dataset} base CA"]
    if ber is None:
        return {**out, "source": sources[0]}
    key = _ber_key(ber, BERS[dataset])
    if fault_model != PAPER_FAULT_MODEL or key is None:
        return None                      # the paper reports nothing at this BER / fault model
    out["PA_mean"], out["PA_std"] = pa[key]
    sources.append("PA")
    if generator is not None:
        own = trained_on in (None, f"{arch}/{dataset}")
        lam = DEFAULT_LAMBDA if lam is None else lam
        source, nf, settings = "", None, {}
        if own and math.isclose(lam, DEFAULT_LAMBDA):
            nf, source = WITH_NF.get((dataset, arch, generator), {}).get(key), "with NF (Tables 12-15)"
            settings = {"lam": DEFAULT_LAMBDA, "trained_on": f"{arch}/{dataset}"}
        elif own and (dataset, generator, key) == LAMBDA_SETTING:
            lam_key = next((k for a, k in LAMBDA_ABLATION if a == arch and math.isclose(k, lam)), None)
            nf, source = LAMBDA_ABLATION.get((arch, lam_key)), f"λ ablation (Table 10, λ={lam:g})"
            settings = {"lam": lam_key, "trained_on": f"{arch}/{dataset}"}
        elif not own and dataset == TRANSFER_DATASET and trained_on.endswith(f"/{dataset}"):
            src = trained_on.split("/")[0]
            nf, source = TRANSFER.get((src, arch, generator), {}).get(key), "transfer (Table 1)"
            settings = {"lam": DEFAULT_LAMBDA, "trained_on": trained_on, "train_ber": TRANSFER_TRAIN_BER}
        if nf is not None:
            out["CA_NF"], out["PA_NF_mean"], out["PA_NF_std"], out["RP"] = nf
            out.update(settings, n_models=PAPER_N_MODELS)
            sources.append(source)
        es = ENERGY_SAVING.get(arch, {}).get(generator) if dataset == "cifar10" and math.isclose(
            ber, ENERGY_SAVING_BER, rel_tol=1e-6) else None
        if es is not None:
            out["ES"] = es
            sources.append("ES (Table 2)")
    out["source"] = f"{dataset}: " + ", ".join(sources[1:])
    return out
