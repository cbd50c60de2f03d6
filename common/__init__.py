"""Ground every package stands on; imports nothing else of the project (docs/DESIGN.md §1).

registry (name -> builder registries), ckpt (self-describing checkpoints, atomic writes), runs (run folders,
seeding, devices, user errors), cli (the one-line-error parser, options read from config fields), dist (DDP),
tblog (optional TensorBoard mirror of metrics.jsonl).
"""
