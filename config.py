"""Settings: the user-editable evaluation switches of the original code, and the config dataclasses.

Edit `testing_mode` / `G_PATH` below to choose what `transform_eval` evaluates, exactly as with the
released code; `--testing-mode` / `--G-path` on the command line override them and the run prints
which source won. Nothing reads these as globals: `zs_main.py` reads them once and passes one frozen
`Configs` down. Every setting below is written once, as a field made by `opt` (common/cli.py): its
flag, default and help text make the command-line option (`zs_main.py`), its `on_resume` policy tells
-rt what may change (train/resume.py), and default run folders are named after the settings that
differ from their defaults. The fault settings live in `bitflip.FaultConfig`.

Example:
    python zs_main.py resnet18 transform_eval cifar10 -cp base.pt --testing-mode generator_base --G-path g.pt
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import MISSING, asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Tuple

from common.cli import IGNORED, MAY_CHANGE, MUST_MATCH, on_resume, opt, show_value

if TYPE_CHECKING:                                # config.py imports nothing of the project beyond common/
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
VAL_SPLIT_SEED = 1                              # validation images held out of the training split
DATA_ORDER_SEED_STRIDE = 100003                 # epoch e of run seed s shuffles with s * stride + e
TEST_LOADER_SEED = 0                            # test loaders keep file order; their generator is unused

# --- shared optimiser defaults (both -E / -LR consumers read these) -------------------------------
EPOCHS = 300             # -E: the released README's value (the paper: ~150 EOPM epochs converge)
LR = 1e-3                # -LR: SGD for QAT, Adam for EOPM (released code)
RUNS_ROOT = "checkpoints"  # default parent of run folders

# mode -> the config sections (or single "section.field" settings) that define one of its runs: -rt
# refuses to change their must-match settings (train/resume.py), and the default folder name carries
# every one of them that differs from its default, so two runs that cannot resume into each other never
# share a default folder. The energy mode writes no folder.
RUN_SETTINGS: Dict[str, Tuple[str, ...]] = {
    "train": ("run", "data", "train", "fault"),      # fault: the bits, and --fault-aware's bit errors
    "transform_eopm_gen": ("run", "data", "eopm", "fault"),
    "transform_eval": ("run", "data", "eval", "fault"),
    "energy": (),
    "export": (),
    "latency": (),
}
FOLDER_WORD = 24         # a longer word of a folder name keeps its first characters plus a hash
FOLDER_NAME = 120        # a longer folder name keeps its start and replaces the settings by one hash


@dataclass(frozen=True)
class DataConfig:
    dataset: str = opt(flag="DATASET", help="dataset")
    root: str = opt("./data", "dataset folder", flag="--data-root", on_resume=MAY_CHANGE)
    download: bool = opt(True, "download through torchvision when missing (needs internet)", flag="--download",
                         on_resume=MAY_CHANGE)
    train_limit: Optional[int] = opt(None, "class-balanced training subset size (images; none = full split)",
                                     flag="--train-limit")
    test_limit: Optional[int] = opt(None, "class-balanced test subset size (images; none = full split)",
                                    flag="--test-limit")
    val_size: Optional[int] = opt(None, "validation images held out of the training split (class-balanced, "
                                  "fixed seed; datasets/splits.py) that pick best.pt; 0 = none, best.pt = the "
                                  "last epoch", flag="--val-size", show="10%% of the training split, at most 1000")
    batch_size: int = opt(256, "training batch size, images (released README)", flag="-BS", folder="bs{}")
    test_batch_size: int = opt(256, "test batch size, images", flag="-TBS", on_resume=MAY_CHANGE)
    workers: int = opt(-1, "DataLoader worker processes; -1 = 0 on CPU, min(8, cores) on CUDA", flag="--workers",
                       on_resume=MAY_CHANGE)
    hflip: bool = opt(True, "GTSRB: flip training images horizontally, as the released code does with traffic "
                      "signs", flag="--hflip")
    augment: bool = opt(True, "training augmentation (crop, flip); --no-augment: the same images in every "
                        "DDP layout", flag="--augment")
    subset_seed: int = SUBSET_SEED
    val_seed: int = VAL_SPLIT_SEED


@dataclass(frozen=True)
class TrainConfig:
    """Base-model QAT (docs/DESIGN.md §4). The defaults are the `paper` recipe: SGD momentum 0.9, no
    weight decay, no schedule; `--recipe fast` sets the fields RECIPES names (train/qat.py)."""
    epochs: int = opt(EPOCHS, "epochs", flag="-E", on_resume=MAY_CHANGE)
    lr: float = opt(LR, "learning rate (SGD for train, Adam for transform_eopm_gen)", flag="-LR", folder="lr{}")
    recipe: str = opt("paper", "train: QAT recipe; fast = Nesterov SGD, weight decay, label smoothing, one-cycle "
                      "LR, -BS 512 -E 40 -LR 0.2 (and --amp --compile --device-data on on CUDA); flags you give "
                      "win (train/qat.py)", flag="--recipe", folder="{}")
    momentum: float = 0.9
    weight_decay: float = 0.0
    nesterov: bool = False
    label_smoothing: float = 0.0
    schedule: str = "none"                        # "none" or "onecycle" (OneCycleLR, max lr -LR, per batch)
    fault_aware: bool = opt(False, "train: fault-aware QAT (RandBET-style): every step also runs the model under "
                            "fresh random bit errors of --fault-model at -ber and averages the two losses "
                            "(train/fault_aware.py)", flag="--fault-aware")
    clip_weights: Optional[float] = opt(None, "train: clip every quantized layer's float weights to [-W, W] after "
                                        "each step (a smaller step size, so fewer bits matter)",
                                        flag="--clip-weights", folder="clip{}", show="no clipping")


# --recipe NAME -> {"section.field": value}: the settings it changes; the keys of flagged settings (-E,
# -LR, -BS, ...) are only defaults that an explicit flag overrides, CUDA_ONLY ones apply on CUDA only.
RECIPES: Dict[str, Dict[str, Any]] = {
    "paper": {},
    "fast": {"train.nesterov": True, "train.weight_decay": 5e-4, "train.label_smoothing": 0.1,
             "train.schedule": "onecycle", "train.epochs": 40, "train.lr": 0.2, "data.batch_size": 512,
             "perf.amp": True, "perf.compile": True, "perf.device_data": "on"},
}
RECIPE_CUDA_ONLY = ("perf.amp", "perf.compile", "perf.device_data")
RECIPE_LR_BATCH = 512     # a recipe's -LR is for this batch; another explicit -BS scales it linearly


@dataclass(frozen=True)
class EOPMConfig:
    """Generator training (docs/DESIGN.md §7)."""
    generator: str = opt("ConvL", "generator", flag="-G", folder="{}")
    epochs: int = opt(EPOCHS, "epochs", flag="-E", on_resume=MAY_CHANGE)
    lr: float = opt(LR, "learning rate (Adam)", flag="-LR", folder="lr{}")
    betas: Tuple[float, float] = (0.5, 0.999)
    lam: float = opt(5.0, "EOPM lambda: weight of the perturbed-model term", flag="-LM", folder="lam{}")
    n_models: int = opt(10, "perturbed models per EOPM step", flag="-N", folder="N{}")
    lr_step_every: int = 500                      # StepLR step size, iterations (stepped per batch)
    lr_gamma: float = 0.96                        # StepLR factor
    train_seeds: Tuple[int, int] = TRAIN_FAULT_SEEDS
    monitor_seeds: Tuple[int, ...] = MONITOR_FAULT_SEEDS
    n_global: bool = opt(False, "DDP: split -N over the processes (N per global batch) instead of N per process",
                         flag="--n-global")
    sync_bn: bool = opt(False, "DDP: the generator's BatchNorm uses the global batch's statistics",
                        flag="--sync-bn")
    surrogates: Tuple[str, ...] = opt((), "transform_eopm_gen: a further base-model checkpoint to train over, "
                                      "besides -cp (repeatable; architecture read from each file); each step's "
                                      "-N perturbed models are drawn across all of them (paper Table 21)",
                                      flag="--surrogate")


@dataclass(frozen=True)
class EvalConfig:
    """What `transform_eval` (and the end of EOPM training) measures (docs/DESIGN.md §8)."""
    testing_mode: str = opt(testing_mode, "what transform_eval evaluates; overrides config.py's testing_mode",
                            flag="--testing-mode")
    g_path: Optional[str] = opt(G_PATH or None, "generator checkpoint for generator_base; overrides config.py's "
                                "G_PATH", flag="--G-path", folder="G{}")
    seeds: Tuple[int, ...] = opt(EVAL_FAULT_SEEDS, "evaluation fault seeds, START:END (end exclusive) or a list",
                                 flag="--eval-seeds", show="50000:50010")
    bers: Tuple[float, ...] = opt((), "evaluate at several BERs, e.g. 0,0.01,0.005 (0: no faults)",
                                  flag="--eval-bers", show="-ber")
    on_train: bool = opt(False, "also evaluate on the training split", flag="--eval-train")
    testing_mode_source: str = opt("config.py", on_resume=IGNORED)   # which source won, printed by transform_eval
    g_path_source: str = opt("config.py", on_resume=IGNORED)


@dataclass(frozen=True)
class EnergyConfig:
    """The `energy` mode (docs/DESIGN.md §10): which generators, the output format, S override."""
    generators: Tuple[str, ...] = ()
    json: bool = opt(False, "print the table as JSON rows", flag="--json")
    saving: Optional[float] = opt(None, "per-access saving S in %%", flag="--saving",
                                  show="from -ber's operating point")
    iso_energy: bool = opt(False, "also the iso-energy point: the BER at which the unprotected base model saves "
                           "what each generator's net saving is (eval/iso_energy.py)", flag="--iso-energy")


@dataclass(frozen=True)
class LatencyConfig:
    """The `latency` mode (paper Table 9; eval/latency.py): batch-1 inference time, median of repeats."""
    warmup: int = opt(10, "latency: untimed warm-up passes", flag="--warmup", on_resume=IGNORED)
    repeats: int = opt(100, "latency: timed passes; the median is reported", flag="--repeats", on_resume=IGNORED)


@dataclass(frozen=True)
class RunConfig:
    arch: str = opt(flag="ARCH", help="architecture")
    mode: str = opt(flag="MODE", help="mode")
    run_dir: Optional[str] = opt(None, "run folder", flag="--run-dir", on_resume=MAY_CHANGE,
                                 show=f"{RUNS_ROOT}/<named after the mode and its settings>")
    seed: int = opt(0, "run seed: init, data order, training fault seeds", flag="--seed", folder="s{}")
    device: str = opt("auto", "auto, cpu, cuda or cuda:N", flag="--device", on_resume=MAY_CHANGE)
    resume: bool = opt(False, "resume the run in the run folder", flag="-rt", on_resume=IGNORED)
    force: bool = opt(False, "overwrite an existing run folder", flag="-F", on_resume=IGNORED)
    checkpoint: Optional[str] = opt(None, "base-model checkpoint (.pt) for transform_* modes; for "
                                    "torchvision:NAME also a plain float state_dict", flag="-cp", folder="cp{}")
    checkpoint_sha256: Optional[str] = opt(None, on_resume=IGNORED)   # -cp's stored checksum (common.ckpt):
                                                                      # -rt accepts the same bytes moved elsewhere
    tensorboard: bool = opt(False, "train / transform_eopm_gen: also write every epoch's metrics for "
                            "TensorBoard (RUN_DIR/tensorboard/; needs `pip install tensorboard`)",
                            flag="--tensorboard", on_resume=MAY_CHANGE)
    max_minutes: Optional[float] = opt(None, "train / transform_eopm_gen: start no epoch that would end past M "
                                       "minutes of training in this call; -rt continues later", flag="--max-minutes",
                                       on_resume=MAY_CHANGE, show="no limit")
    out: Optional[str] = opt(None, "export: the int8 file to write (e.g. m.int8.pt)", flag="--out",
                             on_resume=IGNORED)


@dataclass(frozen=True)
class PerfConfig:
    """Speed settings (docs/DESIGN.md §13). None of them changes the fault bits; `amp` changes the
    float arithmetic (bfloat16) and is off by default; the others give the same results up to float
    summation order (tested)."""
    amp: bool = opt(False, "bfloat16 autocast for G and the base model in training (CUDA only; "
                           "changes float rounding, faults stay int8-exact; evaluation stays fp32)", flag="--amp",
                    on_resume=MAY_CHANGE)
    channels_last: str = opt("off", "NHWC memory layout for the convolutions: on or off (measured: no faster "
                                    "on an H200 in fp32; on a 2-core CPU 2-5%% faster for ResNet18, 15-20%% "
                                    "slower for VGG11/16)", flag="--channels-last", on_resume=MAY_CHANGE)
    batch_models: int = opt(1, "run K perturbed models at once with torch.func.vmap (1 = one by one)",
                            flag="--batch-models", on_resume=MAY_CHANGE)
    prefetch_workers: int = opt(-1, "threads that build fault maps ahead (-1 = cores-1, at most 8; 0 = off)",
                                flag="--prefetch-workers", on_resume=MAY_CHANGE)
    device_data: str = opt("auto", "hold a 32-px dataset on the GPU as uint8 and augment there "
                                   "(auto: on for CUDA)", flag="--device-data", on_resume=MAY_CHANGE)
    eopm_step: str = opt("auto", "EOPM step: plain (the reference loop over the N models), batched (all N "
                                 "seeds' faulty weights in a few ops per layer; train/eopm_fast.py), graph "
                                 "(batched, replayed as a CUDA graph; CUDA only); auto = batched on CUDA, plain "
                                 "on CPU", flag="--eopm-step", on_resume=MAY_CHANGE)
    compile: bool = opt(False, "torch.compile the trained model (QAT) or the generator and the perturbed "
                               "base-model passes (EOPM, evaluation); the compiled code is reused for every "
                               "fault seed (docs/DESIGN.md §13)", flag="--compile", on_resume=MAY_CHANGE)

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
    latency: LatencyConfig = LatencyConfig()

    @property
    def bits(self) -> int:
        """Weight precision of the base model and generator (one field: FaultConfig.bits)."""
        return self.fault.bits

    def to_dict(self) -> Dict[str, Dict[str, Any]]:
        """The resolved configuration as plain data (stored in args.json and in every checkpoint)."""
        return {name: asdict(getattr(self, name)) for name in self.__dataclass_fields__}

    def with_run_dir(self, generator: Optional[str] = None) -> "Configs":
        """A copy whose run.run_dir is set: --run-dir, or a default named after the mode and every
        setting of RUN_SETTINGS[mode] that must match on resume and differs from its default.

        `generator` names the evaluated generator for transform_eval's default folder (it is only known
        once G_PATH is read), so that different evaluations never share a folder.
        """
        if self.run.run_dir:
            return self
        return replace(self, run=replace(self.run, run_dir=self._default_run_dir(generator)))

    def settings(self, keys: Tuple[str, ...]) -> Iterator[Tuple[str, Any, Any]]:
        """(key "section.name", field, value) for each setting named by `keys` (sections or single
        settings, as in RUN_SETTINGS), in field order."""
        for key in keys:
            section, _, only = key.partition(".")
            part = getattr(self, section)
            for f in fields(part):
                if not only or f.name == only:
                    yield f"{section}.{f.name}", f, getattr(part, f.name)

    def _default_run_dir(self, generator: Optional[str]) -> str:
        mode = self.run.mode
        head, named = FOLDER_HEADS[mode](self, generator)
        words = [_short(w) for w in head] + [
            _short(folder_word(f, value)) for key, f, value in self.settings(RUN_SETTINGS[mode])
            if on_resume(f) == MUST_MATCH and f.default is not MISSING
            and key not in named and not _same(value, f.default)]
        name = "_".join([f"{self.run.arch.replace(':', '-')}_{self.data.dataset}", *words])  # torchvision:NAME
        if len(name) > FOLDER_NAME:          # many settings: a readable start, the rest as one hash
            keep = "_".join([f"{self.run.arch.replace(':', '-')}_{self.data.dataset}", *words[:len(head)]])
            name = f"{keep[:FOLDER_NAME - 10]}_h{_hash('_'.join(words))}"
        return f"{RUNS_ROOT}/{name}"


def _same(a: Any, b: Any) -> bool:
    return list(a) == list(b) if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) else a == b


def _hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def _short(word: str) -> str:
    """A folder-name word: safe characters only, and at most FOLDER_WORD long (its start plus a hash)."""
    word = re.sub(r"[^A-Za-z0-9.+=-]", "-", word)
    return word if len(word) <= FOLDER_WORD else f"{word[:FOLDER_WORD - 9]}-{_hash(word)}"


def folder_word(f: Any, value: Any) -> str:
    """How setting `f` with `value` reads in a folder name: its `folder` format ("lam{}" -> lam1), else
    the flag's word and the value (--train-limit 100 -> train-limit100; a switch -> n-global / no-augment).
    A path becomes a hash of the file it names, so two spellings of one file give one folder."""
    word = (f.metadata.get("flag") or f.name).lstrip("-").lower()
    if isinstance(value, bool) and not f.metadata.get("folder"):
        return word if value else f"no-{word}"
    values = value if isinstance(value, (tuple, list)) else (value,)
    if any(isinstance(v, str) and os.sep in v for v in values):
        text = _hash("\n".join(os.path.realpath(v) for v in values))
    else:
        text = "-".join(show_value(v) for v in values)
    return (f.metadata.get("folder") or word + "{}").format(text)


def _eval_head(c: Configs, generator: Optional[str]) -> Tuple[List[str], Tuple[str, ...]]:
    if c.eval.testing_mode != "generator_base":
        return ["eval", "clean"], ("eval.testing_mode",)
    bers = "-".join(f"{b:g}" for b in c.eval.bers or (c.fault.ber,))
    return (["eval", str(generator), f"ber{bers}", c.fault.model],
            ("eval.testing_mode", "eval.bers", "fault.ber", "fault.model"))


# mode -> (the words a default folder name starts with, the settings those words already name)
FOLDER_HEADS: Dict[str, Callable[[Configs, Optional[str]], Tuple[List[str], Tuple[str, ...]]]] = {
    "train": lambda c, g: (["qat"], ()),
    "transform_eopm_gen": lambda c, g: ([c.eopm.generator, f"ber{c.fault.ber:g}", c.fault.model],
                                        ("eopm.generator", "fault.ber", "fault.model")),
    "transform_eval": _eval_head,
    "energy": lambda c, g: (["energy"], ()),
    "export": lambda c, g: (["export"], ()),
    "latency": lambda c, g: (["latency"], ()),
}
