"""Settings: the user-editable evaluation switches of the original code, and the config dataclasses.

Edit `testing_mode` / `G_PATH` below to choose what `transform_eval` evaluates, exactly as with the
released code; `--testing-mode` / `--G-path` on the command line override them and the run prints
which source won. Nothing reads these as globals: `zs_main.py` reads them once and passes one frozen
`Configs` down. Every default below is written once: `zs_main.py` takes its argparse defaults and
help text from these fields (their `help` metadata), and the fault settings from `bitflip.FaultConfig`.

Example:
    python zs_main.py resnet18 transform_eval cifar10 -cp base.pt --testing-mode generator_base --G-path g.pt
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

if TYPE_CHECKING:                                # config.py stays import-free; zs_main builds it
    from bitflip import FaultConfig

# --- user-editable evaluation settings (as in the released code) ----------------------------------
testing_mode = "clean"  # 'clean': base model alone; 'generator_base': generator G_PATH + perturbed base
G_PATH = ""             # generator checkpoint (a run's best.pt) used when testing_mode = 'generator_base'

TESTING_MODES = ("clean", "generator_base")

# --- named seeds (docs/DESIGN.md §5, §8) ------------------------------------------------------------
TRAIN_FAULT_SEEDS = (0, 30000)                  # EOPM draws fresh fault seeds from [0, 30000]
EVAL_FAULT_SEEDS = tuple(range(50000, 50010))   # paper's evaluation: 10 perturbed models
MONITOR_FAULT_SEEDS = (40000, 40001, 40002)     # best-checkpoint selection; disjoint from eval seeds
SUBSET_SEED = 0                                 # --train-limit/--test-limit subsets (same for all runs)
DATA_ORDER_SEED_STRIDE = 100003                 # epoch e of run seed s shuffles with s * stride + e
TEST_LOADER_SEED = 0                            # test loaders keep file order; their generator is unused

# --- shared optimiser defaults (both -E / -LR consumers read these) -------------------------------
EPOCHS = 300             # -E: the released README's value (the paper: ~150 EOPM epochs converge)
LR = 1e-3                # -LR: SGD for QAT, Adam for EOPM (released code)
RUNS_ROOT = "checkpoints"  # default parent of run folders


def opt(default: Any = None, help: str = "", **kw: Any) -> Any:
    """A dataclass field whose default and help text the command line reuses."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable defaults are not allowed in frozen configs")
    return field(default=default, metadata={"help": help}, **kw)
VAL_SPLIT_SEED = 1                              # validation images held out of the training split


@dataclass(frozen=True)
class DataConfig:
    dataset: str
    root: str = opt("./data", "dataset folder")
    download: bool = opt(True, "download through torchvision when missing (needs internet)")
    train_limit: Optional[int] = opt(None, "class-balanced training subset size (images; none = full split)")
    test_limit: Optional[int] = opt(None, "class-balanced test subset size (images; none = full split)")
    val_size: Optional[int] = opt(None, "validation images held out of the training split (class-balanced, "
                                  "fixed seed; datasets/splits.py) that pick best.pt; 0 = none, best.pt = the "
                                  "last epoch; none = 10%% of the split, at most 1000")
    batch_size: int = opt(256, "training batch size, images (released README)")
    test_batch_size: int = opt(256, "test batch size, images")
    workers: int = opt(-1, "DataLoader worker processes; -1 = 0 on CPU, min(8, cores) on CUDA")
    hflip: bool = opt(True, "GTSRB: horizontal flip in training (the released code flips traffic signs)")
    augment: bool = opt(True, "training augmentation (crop, flip); off: images match across DDP runs")
    subset_seed: int = SUBSET_SEED
    val_seed: int = VAL_SPLIT_SEED


@dataclass(frozen=True)
class TrainConfig:
    """Base-model QAT (docs/DESIGN.md §4): SGD momentum 0.9, no weight decay, no schedule."""
    epochs: int = opt(EPOCHS, "epochs")
    lr: float = opt(LR, "learning rate")
    momentum: float = 0.9
    weight_decay: float = 0.0


@dataclass(frozen=True)
class EOPMConfig:
    """Generator training (docs/DESIGN.md §7)."""
    generator: str = opt("ConvL", "generator")
    epochs: int = EPOCHS
    lr: float = LR                                # Adam
    betas: Tuple[float, float] = (0.5, 0.999)
    lam: float = opt(5.0, "EOPM lambda: weight of the perturbed-model term")
    n_models: int = opt(10, "perturbed models per EOPM step")
    lr_step_every: int = 500                      # StepLR step size, iterations (stepped per batch)
    lr_gamma: float = 0.96                        # StepLR factor
    train_seeds: Tuple[int, int] = TRAIN_FAULT_SEEDS
    monitor_seeds: Tuple[int, ...] = MONITOR_FAULT_SEEDS
    n_global: bool = opt(False, "DDP: split -N over the processes (N per global batch) instead of N per process")
    sync_bn: bool = opt(False, "DDP: the generator's BatchNorm uses the global batch's statistics")


@dataclass(frozen=True)
class EvalConfig:
    """What `transform_eval` (and the end of EOPM training) measures (docs/DESIGN.md §8)."""
    testing_mode: str = opt(testing_mode, "override config.py's testing_mode")
    g_path: Optional[str] = opt(G_PATH or None, "override config.py's G_PATH")
    seeds: Tuple[int, ...] = opt(EVAL_FAULT_SEEDS, "evaluation fault seeds, START:END (end exclusive) "
                                 "or a list")
    bers: Tuple[float, ...] = opt((), "evaluate at several BERs, e.g. 0.01,0.005 (default: -ber)")
    on_train: bool = opt(False, "also evaluate on the training split")
    testing_mode_source: str = "config.py"        # which source won, printed by transform_eval
    g_path_source: str = "config.py"


@dataclass(frozen=True)
class EnergyConfig:
    """The `energy` mode (docs/DESIGN.md §10): which generators, the output format, S override."""
    generators: Tuple[str, ...] = ()
    json: bool = opt(False, "energy: print JSON rows")
    saving: Optional[float] = opt(None, "energy: per-access saving S in %%")


@dataclass(frozen=True)
class RunConfig:
    arch: str
    mode: str
    run_dir: Optional[str] = opt(None, "run folder")
    seed: int = opt(0, "run seed: init, data order, training fault seeds")
    device: str = opt("auto", "auto, cpu, cuda or cuda:N")
    resume: bool = opt(False, "resume the run in the run folder")
    force: bool = opt(False, "overwrite an existing run folder")
    checkpoint: Optional[str] = opt(None, "base-model checkpoint (.pt) for transform_* modes; for "
                                    "torchvision:NAME also a plain float state_dict")
    tensorboard: bool = opt(False, "train / transform_eopm_gen: also write every epoch's metrics for "
                            "TensorBoard (RUN_DIR/tensorboard/; needs `pip install tensorboard`)")


@dataclass(frozen=True)
class PerfConfig:
    """Speed settings (docs/DESIGN.md §13). None of them changes the fault bits; `amp` changes the
    float arithmetic (bfloat16) and is off by default; the others give the same results up to float
    summation order (tested)."""
    amp: bool = opt(False, "bfloat16 autocast for G and the base model in training (CUDA only; "
                           "changes float rounding, faults stay int8-exact; evaluation stays fp32)")
    channels_last: str = opt("off", "NHWC memory layout for the convolutions: on or off (measured: no faster "
                                    "on an H200 in fp32; on a 2-core CPU 2-5%% faster for ResNet18, 15-20%% "
                                    "slower for VGG11/16)")
    batch_models: int = opt(1, "run K perturbed models at once with torch.func.vmap (1 = one by one)")
    prefetch_workers: int = opt(-1, "threads that build fault maps ahead (-1 = cores-1, at most 8; 0 = off)")
    device_data: str = opt("auto", "hold a 32-px dataset on the GPU as uint8 and augment there "
                                   "(auto: on for CUDA)")
    compile: bool = opt(False, "torch.compile the trained model (QAT) or the generator and the perturbed "
                               "base-model passes (EOPM, evaluation); the compiled code is reused for every "
                               "fault seed (docs/DESIGN.md §13)")

    @property
    def use_channels_last(self) -> bool:
        return self.channels_last == "on"


@dataclass(frozen=True)
class Configs:
    """Everything one run needs, built once by zs_main.py. Weight precision lives in `fault.bits`."""
    run: RunConfig
    data: DataConfig
    train: TrainConfig
    eopm: EOPMConfig
    fault: FaultConfig
    eval: EvalConfig
    energy: EnergyConfig
    perf: PerfConfig = PerfConfig()

    @property
    def bits(self) -> int:
        """Weight precision of the base model and generator (one field: FaultConfig.bits)."""
        return self.fault.bits

    def to_dict(self) -> Dict[str, Dict[str, Any]]:
        """The resolved configuration as plain data (stored in args.json and in every checkpoint)."""
        return {name: asdict(getattr(self, name)) for name in self.__dataclass_fields__}

    def with_run_dir(self, generator: Optional[str] = None) -> "Configs":
        """A copy whose run.run_dir is set: --run-dir, or a default named after the mode's settings.

        `generator` names the evaluated generator for transform_eval's default folder (it is only known
        once G_PATH is read), so that different evaluations never share a folder.
        """
        if self.run.run_dir:
            return self
        return replace(self, run=replace(self.run, run_dir=self._default_run_dir(generator)))

    def _default_run_dir(self, generator: Optional[str]) -> str:
        base = f"{RUNS_ROOT}/{self.run.arch.replace(':', '-')}_{self.data.dataset}"   # torchvision:NAME
        faults = f"ber{'-'.join(f'{b:g}' for b in self.eval.bers or (self.fault.ber,))}_{self.fault.model}"
        if self.fault.position != -1:
            faults += f"_pos{self.fault.position}"
        if self.fault.bits != {f.name: f.default for f in fields(self.fault)}["bits"]:   # not the default
            faults += f"_{self.fault.bits}bit"
        if self.run.mode == "train":
            return f"{base}_qat"
        if self.run.mode == "transform_eopm_gen":
            return f"{base}_{self.eopm.generator}_ber{self.fault.ber:g}_{self.fault.model}"
        if self.run.mode == "transform_eval":
            what = f"{generator}_{faults}" if self.eval.testing_mode == "generator_base" else "clean"
            return f"{base}_eval_{what}"
        return f"{base}_{self.run.mode}"
