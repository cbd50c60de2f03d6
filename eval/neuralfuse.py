"""`transform_eval` mode (docs/DESIGN.md §8): CA, PA, CA(NF), PA(NF) over evaluation fault seeds, and RP.

For each evaluation seed the base model gets that seed's bit errors; PA is its accuracy alone and
PA(NF) its accuracy on the generator's output F(x) = clamp(x + G(x), -1, 1). Mean and population
std (ddof 0) over seeds; RP = PA(NF)_mean - PA_mean in points. `testing_mode` (config.py, or
--testing-mode) picks 'clean' (the base model alone: CA only) or 'generator_base'. Both write the
same results.json schema: the first entry's numbers at the top level, every (split, BER) entry under
'sweep', and 'settings'. With --ecc secded each seed's row also counts the 72-bit code words that stay
wrong after decoding (`ecc_words`), summed per entry; the console gives the first seed's and the total.

Example:
    python zs_main.py resnet18 transform_eval cifar10 -cp BASE.pt --testing-mode generator_base --G-path G.pt
"""
from __future__ import annotations

import sys
import warnings
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from bitflip import FaultConfig
from bitflip.apply import ecc_word_counts
from bitflip.faults import ECC_LABELS
from bitflip.ensemble import WeightedForward, chunks, perturbed_ensemble
from bitflip.prefetch import MAX_AHEAD, FaultPrefetcher
from common.dist import DistInfo
from common.progress import progress
from common.runs import UsageError
from common.session import Session
from config import TEST_LOADER_SEED, Configs
from datasets import cache_batches, get_dataset_info, make_loader
from eval.accuracy import accuracy, ensemble_accuracy, print_ptq_accuracy
from eval.plots import plot_sweep
from eval.results import TABLE_HEAD, results_row, trained_on, write_results
from eval.sharded import sharded_over_seeds
from generators import load_generator
from models import load_base


def clean_numbers(base: torch.nn.Module, gen: Optional[torch.nn.Module], batches: List,
                  device: torch.device, ca: Optional[float] = None) -> Tuple[Dict, Optional[List]]:
    """({'CA'[, 'CA_NF']}, F(x) batches or None): what does not depend on the BER or the fault seed.
    `ca`, when the base model's accuracy on `batches` is known already, is used instead of measuring it."""
    out: Dict = {"CA": accuracy(base, batches, device, desc="CA")["acc"] if ca is None else ca}
    fx_batches = None
    if gen is not None:
        with torch.no_grad():
            fx_batches = [(gen(x.to(device)), y) for x, y in batches]
        out["CA_NF"] = accuracy(base, fx_batches, device, desc="CA(NF)")["acc"]
    return out, fx_batches


def evaluate_seeds(base: torch.nn.Module, gen: Optional[torch.nn.Module], batches: List, device: torch.device,
                   fault: FaultConfig, seeds: Sequence[int], batch_models: int = 1,
                   on_seed: Optional[Callable[[Dict], None]] = None, prefetch_workers: int = -1,
                   runner: Optional[WeightedForward] = None, clean: Optional[Tuple] = None,
                   base_only: Optional[Dict] = None) -> Dict:
    """The numbers of docs/DESIGN.md §8 for one BER. F(x) is computed once and reused for every seed
    (and for every BER when the caller passes `clean_numbers(...)` as `clean`);
    `batch_models` perturbed models run together (bitflip.ensemble, §13); the fault maps of the
    coming seeds are built in `prefetch_workers` background threads (negative: the default); `on_seed(row)`
    hears of each finished seed; `runner` (a WeightedForward of `base`, e.g. compiled) runs the
    perturbed passes one seed at a time. Always float32: --amp is for training only.
    `base_only`, an earlier `evaluate_seeds(base, None, ...)` on the same batches, fault and seeds,
    supplies CA and each seed's PA, so only the passes that depend on the generator run."""
    known = None if base_only is None else {r["seed"]: r for r in base_only["per_seed"]}
    if known is not None and any(s not in known for s in seeds):
        raise ValueError("base_only was measured on other fault seeds")
    if clean is None:
        clean = clean_numbers(base, gen, batches, device, ca=None if base_only is None else base_only["CA"])
    out, fx_batches = clean
    out = dict(out)
    rows = []
    with FaultPrefetcher(fault, prefetch_workers) as prefetch:
        prefetch.schedule(list(seeds)[:MAX_AHEAD])
        for group in chunks(seeds, batch_models):
            prefetch.wait(group)
            with perturbed_ensemble(base, fault, group, runner) as forward:
                pa = [known[s]["PA"] for s in group] if known is not None \
                    else ensemble_accuracy(forward, batches, device, len(group))
                pnf = ensemble_accuracy(forward, fx_batches, device, len(group)) if fx_batches else None
            for i, seed in enumerate(group):
                rows.append({"seed": seed, "PA": pa[i], **({"PA_NF": pnf[i]} if pnf is not None else {})})
                if fault.ecc != "none":                    # base_only counted the same words already
                    prior = known[seed].get("ecc_words") if known is not None else None
                    rows[-1]["ecc_words"] = prior or ecc_word_counts(base, fault, seed)
                if on_seed is not None:
                    on_seed(rows[-1])
    out["per_seed"] = rows
    return summarize(out)


def summarize(res: Dict) -> Dict:
    """Set the mean/std over `res['per_seed']` (and RP when PA(NF) was measured); returns `res`."""
    rows = res["per_seed"]
    pa = np.array([r["PA"] for r in rows])
    res.update(PA_mean=float(pa.mean()), PA_std=float(pa.std(ddof=0)))
    if rows and "PA_NF" in rows[0]:
        pnf = np.array([r["PA_NF"] for r in rows])
        res.update(PA_NF_mean=float(pnf.mean()), PA_NF_std=float(pnf.std(ddof=0)),
                   RP=float(pnf.mean() - pa.mean()))
    if rows and "ecc_words" in rows[0]:
        res["ecc_words"] = {k: sum(r["ecc_words"][k] for r in rows) for k in rows[0]["ecc_words"]}
    return res


def ecc_text(res: Dict, label: str) -> str:
    """One console line on an entry's code words: the first seed's wrong-after-decoding share, then all seeds'."""
    first, total, n = res["per_seed"][0], res["ecc_words"], len(res["per_seed"])

    def share(c: Dict) -> str:
        return (f"{c['wrong_after']:,} of {c['words']:,} words ({100 * c['wrong_after'] / c['words']:.3f}%) wrong "
                f"after decoding, {c['corrected']:,} corrected")
    return (f"SECDED {label}: seed {first['seed']}: {share(first['ecc_words'])}"
            + (f"; {n} seeds: {share(total)}" if n > 1 else ""))


def seed_progress(total: int, desc: str = "evaluation") -> Tuple[Callable[[str, Dict], None], Callable]:
    """(tick, close): a bar over seeds x BERs on a terminal; in a log file, one line per seed."""
    bar = progress(None, desc, in_logs=False, total=total, unit="seed")
    live, done = sys.stderr.isatty(), [0]

    def tick(label: str, row: Dict) -> None:
        bar.update(1)
        done[0] += 1
        if not live:
            nf = f", PA(NF) {row['PA_NF']:.2f}" if "PA_NF" in row else ""
            print(f"{desc} {done[0]}/{total}: {label} seed {row['seed']}: PA {row['PA']:.2f}{nf}", flush=True)
    return tick, bar.close


def seeds_reused(seeds: Sequence[int], train_seeds: Tuple[int, int], monitor_seeds: Sequence[int]) -> List[int]:
    """Evaluation seeds that EOPM may also have used to train (inclusive range) or select a generator."""
    lo, hi = train_seeds
    return sorted(s for s in set(seeds) if lo <= s <= hi or s in set(monitor_seeds))


def split_batches(data_cfg, split: str, device: torch.device) -> List:
    """A split's images and labels as evaluated: unaugmented, in order, held in memory (on the device)."""
    return cache_batches(make_loader(data_cfg, split, seed=TEST_LOADER_SEED, device=device, augment=False,
                                     shuffle=False), device)


def evaluate_run(cfgs: Configs, base: torch.nn.Module, gen: Optional[torch.nn.Module], run_dir: Optional[Path],
                 device: torch.device, extra_settings: Dict, perturbed_eval: bool = True,
                 dist_info: DistInfo = DistInfo(), runner: Optional[WeightedForward] = None,
                 test_batches: Optional[List] = None) -> Optional[Dict]:
    """Evaluate every split (and, with `perturbed_eval`, every requested BER); print the tables, write
    the result files; returns results.json. `perturbed_eval=False` (testing_mode 'clean') measures CA only.
    With --compile the perturbed passes go through `runner` (made here unless the caller has one);
    `test_batches`, if the caller has read the test split already, are used instead of reading it again.

    Under torchrun every rank evaluates its share of the (BER, seed) pairs (eval/sharded.py) and rank 0
    alone prints and writes the same files as one process would; the other ranks return None."""
    data_cfg = cfgs.data
    if runner is None and cfgs.perf.compile:
        runner = WeightedForward(base, compile=True)
    splits = ["test"] + (["train"] if cfgs.eval.on_train else [])
    bers = (cfgs.eval.bers or (cfgs.fault.ber,)) if perturbed_eval else ()
    if gen is not None and cfgs.fault.model != "chipmap":   # chipmap: the measured maps are shared on purpose
        reused = seeds_reused(cfgs.eval.seeds, cfgs.eopm.train_seeds, cfgs.eopm.monitor_seeds)
        if reused:
            warnings.warn(f"evaluation fault seeds {reused[:5]}{'...' if len(reused) > 5 else ''} lie in the "
                          f"EOPM training range {cfgs.eopm.train_seeds} or the monitor seeds "
                          f"{list(cfgs.eopm.monitor_seeds)}: the generator may have seen these bit errors")
    all_results, ecc = [], ECC_LABELS[cfgs.fault.ecc]
    tick, close = seed_progress(len(splits) * len(bers) * len(cfgs.eval.seeds)) if dist_info.is_main \
        else (lambda label, row: None, lambda: None)              # other ranks: silent
    for split in splits:
        batches = test_batches if split == "test" and test_batches is not None \
            else split_batches(data_cfg, split, device)
        n_images = sum(len(y) for _, y in batches)
        clean = clean_numbers(base, gen, batches, device) if perturbed_eval and bers else None
        if not perturbed_eval:
            res = {"CA": accuracy(base, batches, device, desc="CA")["acc"], "per_seed": [], "ber": None}
            res.update(split=split, n_images=n_images)
            all_results.append(res)
        merged = sharded_over_seeds(
            lambda ber, seeds: evaluate_seeds(base, gen, batches, device, replace(cfgs.fault, ber=ber), seeds,
                                              cfgs.perf.batch_models,
                                              on_seed=lambda row, b=ber: tick(f"{split} ber={b:g}{ecc}", row),
                                              prefetch_workers=cfgs.perf.prefetch_workers,
                                              runner=runner, clean=clean),
            bers, cfgs.eval.seeds, dist_info)
        for ber, res in zip(bers, merged or []):
            res = summarize(res)
            res.update(ber=ber, split=split, n_images=n_images)
            all_results.append(res)
    close()
    if not dist_info.is_main:
        return None
    if ecc and perturbed_eval:
        print(f"{cfgs.fault.model} faults{ecc}: PA and PA(NF) below are the models as the decoder delivers them")
    print(TABLE_HEAD)                                    # one header, then a row per (split, BER)
    for res in all_results:
        label = "clean" if res["ber"] is None else f"ber={res['ber']:g}"
        print(results_row(res, f"{cfgs.run.arch} {res['split']} {label}"))
    for res in all_results:
        if res.get("ecc_words") and res["per_seed"]:
            print(ecc_text(res, f"{res['split']} ber={res['ber']:g}"))
    settings = {"arch": cfgs.run.arch, "dataset": data_cfg.dataset, "fault": asdict(cfgs.fault),
                "fault_model": cfgs.fault.model, "ber": bers[0] if bers else None,
                "seeds": list(cfgs.eval.seeds) if perturbed_eval else [], "test_limit": data_cfg.test_limit,
                "n_images": all_results[0]["n_images"], "generator": None, "g_path": None,
                "generator_trained_on": None, "surrogate_archs": [],
                "base_training": getattr(base, "base_training", None), **extra_settings}
    main = write_results(run_dir, all_results, settings)
    if len(bers) > 1:
        print(f"sweep plot: {plot_sweep(run_dir)}")
    print(f"results: {run_dir / 'results.json'}")
    return main


def run(cfgs: Configs) -> int:
    ev, data_cfg = cfgs.eval, cfgs.data
    with Session(cfgs.run, cfgs.perf, training=False) as s:
        print(f"testing_mode = {ev.testing_mode!r} (from {ev.testing_mode_source})" + (
            f"; G_PATH = {ev.g_path!r} (from {ev.g_path_source})" if ev.testing_mode == "generator_base" else ""))
        info = get_dataset_info(data_cfg.dataset)
        base = load_base(cfgs.run.checkpoint, cfgs.run.arch, data_cfg.dataset, cfgs.bits, s.device,
                         num_classes=info.num_classes, input_size=info.image_size)
        settings = {"testing_mode": ev.testing_mode, "checkpoint": cfgs.run.checkpoint}
        gen = None
        if ev.testing_mode == "generator_base":
            if not ev.g_path:
                raise UsageError("testing_mode 'generator_base' needs a generator: set G_PATH in config.py or "
                                 "pass --G-path (a transform_eopm_gen run's best.pt)")
            gen, gckpt = load_generator(ev.g_path, s.device)
            archs = [str(a) for a in gckpt.get("surrogate_archs") or []]    # the --surrogate models it also saw
            settings.update(generator=gckpt["generator"], g_path=ev.g_path, surrogate_archs=archs,
                            generator_trained_on=trained_on(gckpt["arch"], gckpt["dataset"], archs))
        cfgs = cfgs.with_run_dir(settings.get("generator"))     # named after the generator it evaluates
        test = split_batches(data_cfg, "test", s.device)        # read once
        print_ptq_accuracy(cfgs.run.arch, cfgs.bits, base, test, s.device, "test")
        run_dir = s.claim(cfgs.to_dict(), cfgs.run.run_dir)     # under torchrun the seeds are shared out
        evaluate_run(cfgs, base, gen, run_dir, s.device, settings, perturbed_eval=gen is not None,
                     dist_info=s.dist, test_batches=test)
    return 0
