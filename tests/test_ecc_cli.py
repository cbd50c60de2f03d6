"""--ecc secded end to end (bitflip/ecc.py wired in, docs/DESIGN.md §15): every path that perturbs a model
reads the decoded weights, the evaluation counts the 72-bit words left wrong (against P(K >= 2) for
K ~ Bin(72, p)), the energy mode charges 12.5% more cells, and what ECC cannot model is refused."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn as nn

import zs_main
from bitflip import FaultConfig, perturbed
from bitflip.apply import ecc_word_counts, faulty_int8
from bitflip.batched import BatchedFaults
from bitflip.ecc import CODE_BITS, ECC_DECODERS, WORD_WEIGHTS, secded
from bitflip.ensemble import WeightedForward, faulty_weights, perturbed_ensemble
from bitflip.faults import ECC_CODES, inject_cfg
from common.ckpt import save_checkpoint
from common.dist import DistInfo
from eval.energy import ECC_OVERHEADS
from eval.neuralfuse import evaluate_seeds
from eval.results import read_results
from generators import get_generator
from models import base_checkpoint_meta, get_model, quant_layers
from models.quant import quantize_

SIGMAS = 5                        # tolerance of a measured rate: 5 binomial standard deviations
TINY = ["--test-limit", "20", "-TBS", "20", "--no-download", "--device", "cpu"]


def run_cli(*args):
    return zs_main.main([str(a) for a in args])


def p_wrong_after(p: float) -> float:
    """P(K >= 2), K ~ Bin(72, p): the share of code words SECDED cannot restore when each cell errs with p."""
    return 1 - (1 - p) ** CODE_BITS - CODE_BITS * p * (1 - p) ** (CODE_BITS - 1)


def assert_theory(counts: dict, p: float) -> None:
    """wrong_after / words within SIGMAS binomial sigmas of P(K >= 2); corrected = wrong before - after."""
    n, want = counts["words"], p_wrong_after(p)
    assert counts["wrong_after"] / n == pytest.approx(want, abs=SIGMAS * math.sqrt(want * (1 - want) / n))
    assert counts["corrected"] == counts["wrong_before"] - counts["wrong_after"]   # no right word spoilt


def tiny_model(width: int = 64) -> nn.Module:
    """A self-made quantized conv net on 8x8 inputs; every layer a whole number of 8-weight words."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, width),
                        nn.ReLU(), nn.Linear(width, 10))
    return quantize_(net).eval().requires_grad_(False)


def decoded(model: nn.Module, cfg: FaultConfig, seed: int) -> list:
    """Each layer's int8 weights as the SECDED decoder delivers them, computed by hand."""
    out = []
    for i, (_, layer) in enumerate(quant_layers(model)):
        q = layer.int8_weight()[0]
        out.append(secded(q, inject_cfg(q, cfg, seed, i), cfg, seed, i).q)
    return out


def test_registry_covers_every_code():
    assert set(ECC_DECODERS) == set(ECC_CODES) - {"none"}
    assert set(ECC_OVERHEADS) == set(ECC_CODES) and ECC_OVERHEADS["secded"] == 8 / 64


@pytest.mark.parametrize("model", ["flip", "stuckat", "official"])
def test_every_fault_path_reads_the_decoded_weights(model):
    net, seeds = tiny_model(), [7, 8, 9]
    cfg, plain = FaultConfig(model, 0.02, ecc="secded"), FaultConfig(model, 0.02)
    want = {s: decoded(net, cfg, s) for s in seeds}
    for s in seeds:
        got = [q for _, _, q in faulty_int8(net, cfg, s)]
        assert all(torch.equal(a, b) for a, b in zip(got, want[s]))
        raw = [q for _, _, q in faulty_int8(net, plain, s)]
        assert any(not torch.equal(a, b) for a, b in zip(raw, want[s]))          # the decoder did something
        with perturbed(net, cfg, s):                                             # in place (eval, EOPM, samples)
            assert all(torch.equal(layer.fault_weight, layer.dequantize(q))
                       for (_, layer), q in zip(quant_layers(net), want[s]))
    with pytest.raises(ValueError, match="--ecc secded is not implemented by the batched fault op"):
        BatchedFaults(net, cfg)                                                  # auto picks the plain step
    x = torch.randn(4, 3, 8, 8)
    with perturbed_ensemble(net, cfg, seeds) as forward:                         # --batch-models 3 (vmap)
        stacked = forward(x)
    runner = WeightedForward(net)
    for k, s in enumerate(seeds):
        with perturbed(net, cfg, s):
            ref = net(x)
        assert torch.allclose(stacked[k], ref, atol=1e-5)
        assert torch.allclose(runner(faulty_weights(net, cfg, s), x), ref, atol=1e-5)   # --compile's path


def test_looped_and_batched_evaluation_agree_and_count_words():
    net, cfg = tiny_model(), FaultConfig("flip", 0.03, ecc="secded")
    torch.manual_seed(1)
    batches = [(torch.randn(16, 3, 8, 8), torch.randint(0, 10, (16,))) for _ in range(2)]
    gen = nn.Identity()
    runs = [evaluate_seeds(net, gen, batches, torch.device("cpu"), cfg, [3, 4, 5], batch_models=k,
                           prefetch_workers=0) for k in (1, 2)]
    assert runs[0]["per_seed"] == runs[1]["per_seed"]
    rows = runs[0]["per_seed"]
    assert all(r["ecc_words"] == ecc_word_counts(net, cfg, r["seed"]) for r in rows)
    assert runs[0]["ecc_words"] == {k: sum(r["ecc_words"][k] for r in rows) for k in rows[0]["ecc_words"]}
    plain = evaluate_seeds(net, gen, batches, torch.device("cpu"), FaultConfig("flip", 0.03), [3], prefetch_workers=0)
    assert "ecc_words" not in plain and "ecc_words" not in plain["per_seed"][0]


@pytest.mark.parametrize("model, p_cell", [("flip", lambda ber: ber),            # every faulty cell errs
                                           ("stuckat", lambda ber: ber / 2)])    # stuck at the stored bit half the time
def test_words_left_wrong_match_binomial_theory(model, p_cell):
    net, ber = tiny_model(width=512), 0.01
    assert all(layer.weight.numel() % WORD_WEIGHTS == 0 for _, layer in quant_layers(net))  # no padded words
    cfg = FaultConfig(model, ber, ecc="secded")
    counts = [ecc_word_counts(net, cfg, s) for s in range(4)]
    total = {k: sum(c[k] for c in counts) for k in counts[0]}
    assert total["words"] == 4 * sum(layer.weight.numel() for _, layer in quant_layers(net)) // WORD_WEIGHTS
    assert_theory(total, p_cell(ber))
    p1 = 1 - (1 - p_cell(ber)) ** CODE_BITS                                      # any of the 72 cells wrong
    assert total["wrong_before"] / total["words"] == pytest.approx(p1, abs=SIGMAS * math.sqrt(p1 * (1 - p1)
                                                                                               / total["words"]))


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """An untrained vgg11 base checkpoint and a ConvS generator checkpoint, written here (no training)."""
    out = tmp_path_factory.mktemp("ecc")
    torch.manual_seed(0)
    save_checkpoint({**base_checkpoint_meta("vgg11", "cifar10", 10, 8),
                     "state_dict": get_model("vgg11", 10).state_dict()}, out / "base.pt")
    save_checkpoint({"kind": "generator", "generator": "ConvS", "arch": "vgg11", "dataset": "cifar10", "bits": 8,
                     "state_dict": get_generator("ConvS").state_dict()}, out / "gen.pt")
    return out


def test_transform_eval_with_secded_records_wrong_words(ckpts, cifar_root, capsys):
    run = ckpts / "eval"
    assert run_cli("vgg11", "transform_eval", "cifar10", "-cp", ckpts / "base.pt", "--testing-mode", "generator_base",
                   "--G-path", ckpts / "gen.pt", "--fault-model", "flip", "-ber", 0.01, "--ecc", "secded",
                   "--eval-seeds", 50000, "--run-dir", run, "--data-root", cifar_root, *TINY) == 0
    out = capsys.readouterr().out
    assert "BER 0.01, 8-bit + SECDED" in out                                    # the start-up line
    raw = json.loads((run / "results.json").read_text())
    res = read_results(run)                                                     # the reader accepts the field
    entry = res.entries[0]
    assert res.settings["fault"]["ecc"] == "secded" and raw["ecc_words"] == entry["ecc_words"]
    counts = entry["ecc_words"]
    assert counts == entry["per_seed"][0]["ecc_words"]
    assert counts["words"] == sum(-(-layer.weight.numel() // 8) for _, layer in quant_layers(get_model("vgg11", 10)))
    assert_theory(counts, 0.01)
    share = 100 * counts["wrong_after"] / counts["words"]
    assert (f"SECDED test ber=0.01: seed 50000: {counts['wrong_after']:,} of {counts['words']:,} words "
            f"({share:.3f}%) wrong after decoding") in out


@pytest.mark.parametrize("extra, message", [
    (["--fault-model", "chipmap"], "--ecc secded needs a rate fault model"),
    (["-pos", "3"], "-pos must be -1 (any bit), got -pos 3"),
    (["--bits", "4"], "--ecc secded needs --bits 8 (a 64-bit word holds 8 int8 weights), got --bits 4"),
])
def test_what_secded_cannot_model_is_one_line_exit_2(tmp_path, capsys, extra, message):
    assert run_cli("vgg11", "transform_eval", "cifar10", "-cp", tmp_path / "none.pt", "--testing-mode",
                   "generator_base", "--G-path", tmp_path / "g.pt", "--ecc", "secded", *extra,
                   "--run-dir", tmp_path / "r") == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_energy_mode_charges_the_check_cells(capsys):
    assert run_cli("resnet18", "energy", "cifar10", "-G", "ConvL", "--json") == 0
    plain = json.loads(capsys.readouterr().out.strip().splitlines()[-1])[0]
    assert run_cli("resnet18", "energy", "cifar10", "-G", "ConvL", "--json", "--ecc", "secded") == 0
    ecc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])[0]
    assert plain["ecc_overhead"] == 0.0 and ecc["ecc_overhead"] == 0.125
    assert ecc["access_saving"] == pytest.approx(100 * (1 - 1.125 * (1 - plain["saving"] / 100)))
    assert ecc["es_twma"] == pytest.approx(plain["es_twma"] - (plain["saving"] - ecc["access_saving"]))
    assert run_cli("resnet18", "energy", "cifar10", "-G", "ConvL", "--ecc", "secded") == 0
    text = capsys.readouterr().out
    assert "-ber 0.01 + SECDED" in text and "SECDED: 12.5% more cells per access" in text


def test_run_descriptions_name_secded():
    from train.eopm import describe_run

    def cfgs(*argv):
        return zs_main.build_configs(zs_main.build_parser().parse_args(list(argv)))
    for mode in ("transform_eopm_gen", "transform_eval"):
        argv = ["vgg11", mode, "cifar10", "--testing-mode", "generator_base"]
        assert "+ SECDED" in zs_main.summary_line(cfgs(*argv, "--ecc", "secded"))
        assert "SECDED" not in zs_main.summary_line(cfgs(*argv))
    line = describe_run(cfgs("vgg11", "transform_eopm_gen", "cifar10", "--ecc", "secded"), 40, 0, DistInfo(), 2)
    assert "at ber=0.01 + SECDED;" in line
    gen = ["vgg11", "transform_eval", "cifar10", "--testing-mode", "generator_base"]
    assert (cfgs(*gen).with_run_dir("ConvL").run.run_dir
            != cfgs(*gen, "--ecc", "secded").with_run_dir("ConvL").run.run_dir)   # ecc-secded in the folder
