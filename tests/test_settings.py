"""The one table of settings (common.cli.opt metadata): every flag the metadata names is an option of the
parser, default run folders carry every must-match setting that differs from its default, -rt names
settings as the user types them, many --eval-bers make a short folder name, the subcommands are listed
in the usage and share one error skeleton, and grid.py builds the run parser without importing zs_main."""
from __future__ import annotations

import ast
import dataclasses
import os
from pathlib import Path

import pytest

import zs_main
from common.cli import EXIT_USAGE, MUST_MATCH, OneLineParser, flag_of, on_resume, run_subcommand
from config import FOLDER_NAME, RUN_SETTINGS, RUNS_ROOT
from train.resume import SECTION_TYPES, compare_settings, describe

ROOT = Path(__file__).resolve().parent.parent
CP = ["-cp", "checkpoints/vgg11_cifar10_qat/best.pt"]
GEN_EVAL = ["--testing-mode", "generator_base", "--G-path", "runs/g/best.pt"]
# mode -> the command whose default folder the table test varies
COMMANDS = {"train": ["vgg11", "train", "cifar10"],
            "transform_eopm_gen": ["vgg11", "transform_eopm_gen", "cifar10", *CP],
            "transform_eval": ["vgg11", "transform_eval", "cifar10", *CP, *GEN_EVAL]}
# settings whose other value is not generic (a registry name, a valid pair, measured maps)
OTHER = {"eopm.generator": "UNetS", "fault.model": "flip", "eval.testing_mode": "clean",
         "fault.bits": 4, "fault.maps": ("maps/b.npz",), "fault.ecc": "secded",
         "eopm.surrogates": ("elsewhere/vgg19.pt",)}


def configs(*argv):
    return zs_main.build_configs(zs_main.build_parser().parse_args([str(a) for a in argv]))


def folder(cfgs, generator="ConvL"):
    return cfgs.with_run_dir(generator).run.run_dir


def other_value(key, value, annotation):
    """A valid value of the setting that differs from `value`."""
    if key in OTHER:
        return OTHER[key]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 2 if value else 0.5
    if isinstance(value, tuple):
        return tuple(v + 1 for v in value) if value else (0.02,)
    if value is None:
        return 100 if "int" in annotation else "elsewhere/file.pt"
    return value + "x"


@pytest.mark.parametrize("mode", list(COMMANDS))
def test_every_must_match_setting_changes_the_default_folder(mode):
    plain = configs(*COMMANDS[mode])
    chip = dataclasses.replace(plain, fault=dataclasses.replace(plain.fault, model="chipmap", maps=("maps/a.npz",)))
    varied = []
    for key, f, value in plain.settings(RUN_SETTINGS[mode]):
        if on_resume(f) != MUST_MATCH or f.default is dataclasses.MISSING:
            continue                  # may change on resume, or named by ARCH / MODE / DATASET
        base = chip if key == "fault.maps" else plain      # maps need the measured fault model: vary one map
        section, name = key.split(".")
        new = other_value(key, value, str(f.type))
        changed = dataclasses.replace(base, **{section: dataclasses.replace(getattr(base, section), **{name: new})})
        assert folder(changed) != folder(base), f"{key}: {value!r} -> {new!r} keeps {folder(base)}"
        varied.append(key)
    expect = {"train": {"run.seed", "train.lr", "data.batch_size", "fault.bits", "train.fault_aware",
                        "train.clip_weights", "fault.model", "fault.ber", "fault.position", "fault.ecc",
                        "fault.maps"},
              "transform_eopm_gen": {"run.seed", "run.checkpoint", "eopm.lam", "eopm.n_models", "fault.position",
                                     "fault.bits", "fault.ber", "eopm.generator", "fault.maps", "fault.ecc",
                                     "eopm.surrogates"},
              "transform_eval": {"eval.seeds", "eval.bers", "eval.g_path", "fault.position"}}[mode]
    assert expect <= set(varied)


def test_the_reported_collisions_get_their_own_folders():
    eopm = COMMANDS["transform_eopm_gen"]
    names = [folder(configs(*eopm, *extra)) for extra in
             ([], ["-pos", 3], ["--bits", 4], ["-LM", 1], ["-N", 4], ["--seed", 2])]
    assert len(set(names)) == len(names), names
    assert all(n.startswith(f"{RUNS_ROOT}/vgg11_cifar10_ConvL_ber0.01_official") for n in names)
    assert names[3].endswith("_lam1") and "_pos3" in names[1] and "_4bit" in names[2] and "_s2" in names[5]
    # settings that may change on resume keep the folder, so -rt finds the run
    assert folder(configs(*eopm, "-E", 7, "--device", "cpu", "--workers", 2)) == names[0]
    assert folder(configs("vgg11", "train", "cifar10")) == f"{RUNS_ROOT}/vgg11_cifar10_qat"
    # the fault section counts for train (--fault-aware), yet a plain train run keeps its folder name
    assert folder(configs("vgg11", "train", "cifar10", "--bits", 4)) == f"{RUNS_ROOT}/vgg11_cifar10_qat_4bit"
    assert folder(configs("vgg11", "train", "cifar10", "--fault-aware", "-ber", 0.02)) == \
        f"{RUNS_ROOT}/vgg11_cifar10_qat_fault-aware_ber0.02"


def test_many_eval_bers_make_a_short_folder_name(tmp_path):
    bers = ",".join(f"{0.0005 * i:g}" for i in range(40))          # 40 values, 0 (no faults) first
    cfgs = configs(*COMMANDS["transform_eval"], "--eval-bers", bers)
    assert cfgs.eval.bers[0] == 0.0 and len(cfgs.eval.bers) == 40
    name = Path(folder(cfgs)).name
    assert len(name) <= FOLDER_NAME and name.startswith("vgg11_cifar10_eval_ConvL_ber0-0.0005")
    assert name != Path(folder(configs(*COMMANDS["transform_eval"], "--eval-bers", bers + ",0.05"))).name
    (tmp_path / name).mkdir()                                      # a legal file name


def test_eval_bers_accepts_zero_and_refuses_one(capsys):
    assert configs(*COMMANDS["transform_eval"], "--eval-bers", "0,0.01").eval.bers == (0.0, 0.01)
    assert zs_main.build_parser().parse_or_exit_code([*COMMANDS["transform_eval"], "--eval-bers", "0.01,1"]) \
        == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert "0.01,1" in err and "[0, 1)" in err and len(err.splitlines()) == 1


def test_every_flag_of_the_table_is_an_option_of_the_parser():
    parser = zs_main.build_parser()
    spelt = {s for a in parser._actions for s in a.option_strings} | {a.metavar for a in parser._actions}
    flags = [flag_of(f) for cls in SECTION_TYPES.values() for f in dataclasses.fields(cls) if flag_of(f)]
    assert len(flags) > 40 and set(flags) <= spelt, set(flags) - spelt


def test_resume_names_settings_as_typed():
    saved = configs(*COMMANDS["transform_eopm_gen"], "-E", 1).to_dict()
    now = configs(*COMMANDS["transform_eopm_gen"], "-E", 2, "-LM", 1, "-rt", "--no-augment", "--tensorboard")
    refused, changed = compare_settings(saved, now.to_dict(), "generator")
    assert refused == ["--augment (run: on, command: off)", "-LM (run: 5, command: 1)"]
    assert changed == ["-E 1 -> 2", "--tensorboard off -> on"]     # -rt itself is not a change
    assert not any("config.py" in s for s in refused + changed)
    base = configs(*COMMANDS["train"]).to_dict()
    refused, _ = compare_settings(base, configs(*COMMANDS["train"], "--bits", 4).to_dict(), "base")
    assert refused == ["--bits (run: 8, command: 4)"]               # the precision of a base run must match
    assert "-LR 0.001" in describe(base, "base") and "-E" not in describe(base, "base")


def test_subcommands_are_listed_in_the_usage():
    out = zs_main.build_parser().format_help()
    usage = out.split("\n\n")[0]
    for name in zs_main.SUBCOMMANDS:
        assert f"zs_main.py {name} " in usage
    assert "--no-hflip" in out and "(default on)" in out.split("--no-hflip")[1].split("--")[0]
    assert "(default -ber)" in out and "(default: -ber)" not in out


def test_run_subcommand_turns_expected_errors_into_one_line(capsys):
    p = OneLineParser(prog="tool")
    p.add_argument("x", type=int)

    def body(args):
        raise KeyError(f"bad {args.x}") if args.x else ValueError("zero")
    assert run_subcommand(p, ["3"], body, {(KeyError, IndexError): 5, ValueError: 2}) == 5
    assert run_subcommand(p, ["0"], body, {(KeyError, IndexError): 5, ValueError: 2}) == 2
    assert run_subcommand(p, ["x"], body, {ValueError: 2}) == 2            # argparse's own one line
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "tool: error: 'bad 3'" and err[1] == "tool: error: zero" and "invalid int" in err[2]
    with pytest.raises(KeyError):                                           # an unexpected error is not hidden
        run_subcommand(p, ["1"], body, {ValueError: 2})


@pytest.mark.parametrize("path", ["grid.py", "run_args.py"])
def test_grid_and_the_run_parser_do_not_import_zs_main(path):
    tree = ast.parse((ROOT / path).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "zs_main" not in imported and "run_args" in imported | {os.path.splitext(path)[0]}


def test_faultmap_refuses_a_bad_position_through_fault_config(tmp_path, capsys):
    from bitflip.faultmap_cli import main
    assert main(["export", "--seed", "1", "-pos", "4", "--bits", "4", "--out", str(tmp_path / "c")]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.startswith("zs_main.py faultmap: error:") and "got 4" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "c").exists()
    assert main(["export", "--seed", "-1", "--out", str(tmp_path / "c")]) == EXIT_USAGE
    assert "-1 is outside 0.." in capsys.readouterr().err


def test_the_base_models_stored_checksum_is_recorded_with_the_settings(tmp_path):
    from common.ckpt import save_checkpoint, stored_checksum
    base = tmp_path / "base.pt"
    save_checkpoint({"w": [1, 2, 3]}, base)
    cfgs = configs("vgg11", "transform_eopm_gen", "cifar10", "-cp", base)
    assert cfgs.run.checkpoint_sha256 == stored_checksum(base) and len(cfgs.run.checkpoint_sha256) == 64
    assert configs("vgg11", "transform_eopm_gen", "cifar10", "-cp", tmp_path / "absent.pt").run.checkpoint_sha256 is None
    assert configs("vgg11", "train", "cifar10").run.checkpoint_sha256 is None
