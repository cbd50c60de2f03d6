"""Bit errors in int8 weights (docs/DESIGN.md §5): fault models, tensor-level injection, perturbed models.

Example:
    from bitflip import FaultConfig, inject, perturbed
    q2 = inject(q, "official", ber=0.01, seed=50000)          # int8 tensor -> int8 tensor
    with perturbed(model, FaultConfig("flip", 0.01), seed=3):  # quantized model, faults set in place
        logits = model(x)
"""
from bitflip.faults import (FAULT_MODELS, FaultConfig, inject, inject_cfg, list_fault_models,
                            rate_fault_models, sign_extend)
from bitflip.apply import clear_faults, perturb, perturbed

__all__ = ["FAULT_MODELS", "FaultConfig", "inject", "inject_cfg", "list_fault_models", "rate_fault_models",
           "sign_extend",
           "perturb", "perturbed", "clear_faults"]
