"""grid_schema: every grid-file key checked (type, range, registry), one line naming the key and value;
control characters refused before they reach a Slurm script; a relative `out` is one folder for the
runs, the status check and the report, wherever the sweep is started."""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import grid as grid_mod
from grid_schema import GridError, check_grid, check_launch_options

ROOT = Path(grid_mod.__file__).resolve().parent
GOOD = {"dataset": "cifar10", "archs": ["vgg11"], "generators": ["ConvS"], "bers": [0.01]}


@pytest.mark.parametrize("over, words", [
    ({"bers": ["abc"]}, "'bers'[0]: 'abc' is not a bit error rate in (0, 1)"),
    ({"bers": [0]}, "'bers'[0]: 0 is not a bit error rate"),
    ({"bers": [1]}, "'bers'[0]: 1 is not a bit error rate"),
    ({"bers": [float("nan")]}, "'bers'[0]: nan"),
    ({"bers": [True]}, "'bers'[0]: True"),
    ({"bers": []}, "'bers' must be a non-empty list"),
    ({"bers": [0.01, 0.01]}, "'bers' repeats a value (0.01)"),
    ({"dataset": 5}, "'dataset': 5 is not a non-empty string"),
    ({"dataset": "cifar11"}, "'dataset': unknown dataset 'cifar11'; choose from"),
    ({"out": 5}, "'out': 5 is not a non-empty string"),
    ({"out": ""}, "'out': '' is not a non-empty string"),
    ({"out": "runs\n#SBATCH --wrap=id"}, "'out': 'runs\\n#SBATCH --wrap=id' holds the control character '\\n'"),
    ({"out": "runs\r"}, "control character '\\r'"),
    ({"flags": ["--data-root", "d\x00"]}, "'flags'[1]: 'd\\x00' holds the control character"),
    ({"flags": "-E 1"}, "'flags' must be a list"),
    ({"eopm_flags": [None]}, "'eopm_flags'[0]: None is not a non-empty string"),
    ({"archs": []}, "'archs' must be a non-empty list"),
    ({"archs": ["resnet19"]}, "'archs'[0]: unknown architecture 'resnet19'"),
    ({"archs": ["torchvision:nosuchnet"]}, "'archs'[0]: unknown torchvision classifier"),
    ({"generators": ["ConvX"]}, "'generators'[0]: unknown generator 'ConvX'; choose from"),
    ({"lambdas": [-1]}, "'lambdas'[0]: -1 is not a finite lambda >= 0"),
    ({"seeds": [-1]}, "'seeds'[0]: -1 is not an integer seed"),
    ({"seeds": [1.5]}, "'seeds'[0]: 1.5"),
    ({"base_seed": "0"}, "'base_seed': '0' is not an integer seed"),
    ({"base_checkpoints": ["a.pt"]}, "'base_checkpoints' must be an object"),
    ({"base_checkpoints": {"vgg16": "a.pt"}}, "'base_checkpoints': 'vgg16' is not one of the grid's archs"),
    ({"base_checkpoints": {"vgg11": 3}}, "'base_checkpoints'['vgg11']: 3"),
    ({"comment": 3}, "'comment': 3"),
    ({"generatorz": ["ConvL"]}, "unknown key(s) 'generatorz'; accepted:"),
])
def test_each_violation_is_one_line_naming_key_and_value(over, words):
    with pytest.raises(GridError) as e:
        check_grid({**GOOD, **over}, "g.json")
    msg = str(e.value)
    assert msg.startswith("grid file g.json: ") and words in msg and "\n" not in msg and "\r" not in msg, msg


@pytest.mark.parametrize("data", [[1], "x", {"archs": ["vgg11"]}, {"dataset": "cifar10"}])
def test_not_a_grid_object(data):
    with pytest.raises(GridError, match="at least 'dataset' and 'archs'"):
        check_grid(data, "g.json")


def test_shipped_grids_pass_and_numbers_in_flags_become_text():
    for f in sorted((ROOT / "grids").glob("*.json")):
        check_grid(json.loads(f.read_text()), str(f))
    assert check_grid({**GOOD, "flags": ["-E", 3]}, "g")["flags"] == ("-E", "3")


def test_grid_file_that_is_not_utf8_is_one_line(tmp_path):
    (tmp_path / "g.json").write_bytes(b'{"dataset": "\xff"}')
    with pytest.raises(GridError, match="g.json: 'utf-8' codec can't decode"):
        grid_mod.load_grid(str(tmp_path / "g.json"))


def test_launch_options_with_control_characters_are_refused():
    with pytest.raises(GridError, match="--partition: 'gpu\\\\n"):
        check_launch_options("gpu\n#SBATCH --wrap=id", [])
    with pytest.raises(GridError, match="--slurm-extra: 'account=a\\\\n"):
        check_launch_options(None, ["account=a\nb"])
    with pytest.raises(GridError, match="give KEY=VALUE"):
        check_launch_options(None, ["account"])
    check_launch_options("gpu", ["account=abc", "qos=high"])


def test_sbatch_lines_of_an_odd_but_legal_out_stay_one_line_each(tmp_path, monkeypatch):
    """Spaces, quotes and $(...) in `out` reach the #SBATCH lines shell-quoted, one line per option."""
    slurm = pytest.importorskip("submitit.slurm.slurm")
    monkeypatch.chdir(tmp_path)
    out = "odd dir/it's $(touch pwned)"
    g = grid_mod.Grid(**check_grid({**GOOD, "out": out, "base_checkpoints": {}}, "g"))
    opts = SimpleNamespace(time=5, gpus=1, cpus=None, slurm_extra=["account=a b"], partition="gpu",
                           array_parallelism=None)
    params = grid_mod.job_parameters([], opts, "slurm", {})
    text = slurm._make_sbatch_string(command="true", folder=Path(g.out) / "submitit" / "%j",
                                     job_name=params["name"], partition=params["slurm_partition"],
                                     additional_parameters=params["slurm_additional_parameters"])
    header = [ln for ln in text.splitlines() if ln.startswith("#")]
    body = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    output = next(ln for ln in header if ln.startswith("#SBATCH --output="))
    assert shlex.split(output.split("=", 1)[1]) == [str(tmp_path / out / "submitit" / "%j" / "%j_0_log.out")]
    assert "#SBATCH --account='a b'" in header
    srun = shlex.split(next(ln for ln in body if ln.startswith("srun ")))       # quoted: no $(...) runs
    assert srun[srun.index("--output") + 1] == str(tmp_path / out / "submitit" / "%j" / "%j_%t_log.out")


def test_relative_out_is_one_folder_for_runs_status_and_report(tmp_path, monkeypatch):
    """The case found: runs resolved `out` against the checkout, status against the caller's folder,
    so a second sweep from elsewhere redid every run. Here a stand-in run writes results.json into its
    --run-dir, resolved in its own working folder; the status check must then see it as done."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    Path("base.pt").write_bytes(b"stand-in")
    Path("g.json").write_text(json.dumps({**GOOD, "out": "rel", "base_checkpoints": {"vgg11": "base.pt"}}))
    g = grid_mod.load_grid("g.json")
    assert g.out == str(elsewhere / "rel") and g.base_checkpoints == {"vgg11": str(elsewhere / "base.pt")}
    runs = grid_mod.expand(g)
    assert [grid_mod.status(r) for r in runs] == ["new"]
    stand_in = ("import sys, pathlib; d = pathlib.Path(sys.argv[sys.argv.index('--run-dir') + 1]); "
                "d.mkdir(parents=True); (d / 'results.json').write_text('{}')")
    monkeypatch.setattr(grid_mod, "command", lambda run, gpus: [sys.executable, "-c", stand_in, *run.argv])
    assert grid_mod.launch_local([[], runs], SimpleNamespace(gpus=1)) == []
    assert [grid_mod.status(r) for r in runs] == ["done"]
    assert (elsewhere / "rel" / "gen" / runs[0].name / "results.json").is_file()
    assert not (ROOT / "rel").exists()
