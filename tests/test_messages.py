"""What a researcher sees: start-up lines, -rt on a finished run, checkpoint refusals, progress in logs."""
from __future__ import annotations

import os

import zs_main


def summary(*argv: str) -> str:
    return zs_main.summary_line(zs_main.build_configs(zs_main.build_parser().parse_args(list(argv))))


def test_clean_evaluation_names_no_faults():
    line = summary("resnet18", "transform_eval", "cifar10", "--testing-mode", "clean", "-cp", "x.pt")
    assert "testing_mode clean" in line and "BER" not in line and "faults" not in line
    faulty = summary("resnet18", "transform_eval", "cifar10", "--testing-mode", "generator_base",
                     "-cp", "x.pt", "--G-path", "g.pt")
    assert "faults at BER 0.01" in faulty


def test_summary_says_where_settings_go_and_never_cp_none(tmp_path):
    line = summary("resnet18", "transform_eopm_gen", "cifar10", "--run-dir", str(tmp_path / "r"))
    assert "-cp None" not in line and "-cp missing" in line
    assert f"settings go to {os.path.join(str(tmp_path / 'r'), 'args.json')}" in line
    assert "full settings" not in line
    assert "args.json" not in summary("resnet18", "energy", "cifar10")
