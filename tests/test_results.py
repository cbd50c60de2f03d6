"""The results schema (eval/results.py): what write_results writes, read_results reads back; older layouts are
filled in; a value of the wrong type is refused in one line naming the file and the key."""
from __future__ import annotations

import csv
import json

import pytest

from eval.results import RESULT_KEYS, ResultsError, format_results, read_results, write_results


def _entry(ber, split="test"):
    return {"CA": 90.0, "CA_NF": 89.0, "PA_mean": 41.0, "PA_std": 1.0, "PA_NF_mean": 81.0, "PA_NF_std": 1.0,
            "RP": 40.0, "per_seed": [{"seed": 7, "PA": 40.0, "PA_NF": 80.0}, {"seed": 8, "PA": 42.0, "PA_NF": 82.0}],
            "ber": ber, "split": split, "n_images": 20}


def test_write_then_read_round_trip(tmp_path):
    entries = [_entry(0.01), _entry(0.005), _entry(0.01, "train")]
    written = write_results(tmp_path, entries, {"arch": "vgg11", "dataset": "cifar10", "ber": 0.01, "seeds": [7, 8]})
    assert {k: written[k] for k in RESULT_KEYS} == {k: entries[0][k] for k in RESULT_KEYS}
    res = read_results(tmp_path)
    assert res.path == tmp_path / "results.json" and res.settings["arch"] == "vgg11"
    assert [(e["split"], e["ber"]) for e in res.entries] == [("test", 0.01), ("test", 0.005), ("train", 0.01)]
    with open(tmp_path / "summary.csv") as f:
        summary = list(csv.DictReader(f))
    assert [float(r["RP"]) for r in summary] == [40.0] * 3 and list(summary[0])[2:] == list(RESULT_KEYS)
    assert "41.00 ±  1.0" in format_results(res.entries[0], "vgg11")


def test_older_layouts_are_filled_in(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"CA": 88.0, "settings": {"testing_mode": "clean",
                                                                               "n_images": 100}}))
    clean = read_results(tmp_path).entries
    assert clean == [{"CA": 88.0, "split": "test", "ber": None, "n_images": 100, "per_seed": []}]
    top_only = {**{k: v for k, v in _entry(0.01).items() if k not in ("ber", "split", "n_images")},
                "settings": {"ber": 0.02, "n_images": 50}}                       # before 'sweep' existed
    (tmp_path / "results.json").write_text(json.dumps(top_only))
    (entry,) = read_results(tmp_path).entries
    assert (entry["ber"], entry["split"], entry["n_images"], entry["RP"]) == (0.02, "test", 50, 40.0)


@pytest.mark.parametrize("edit,where", [
    (lambda r: r["sweep"][1].update(PA_mean="41.0"), "sweep[1].PA_mean"),
    (lambda r: r["sweep"][0].update(RP=True), "sweep[0].RP"),                    # a bool is not a number
    (lambda r: r["sweep"][0]["per_seed"][1].update(seed=8.5), "sweep[0].per_seed[1].seed"),
    (lambda r: r["settings"].update(lam=[5]), "settings.lam"),
    (lambda r: r["settings"].update(fault={"model": "official", "ber": "1%"}), "settings.fault.ber"),
    (lambda r: r.update(sweep={"0": 1}), "sweep"),
    (lambda r: r.update(settings="vgg11"), "settings"),
], ids=["string", "bool", "seed", "lam", "fault", "sweep", "settings"])
def test_wrong_typed_value_is_one_line_naming_file_and_key(tmp_path, edit, where):
    write_results(tmp_path, [_entry(0.01), _entry(0.005)], {"arch": "vgg11", "lam": 5.0})
    raw = json.loads((tmp_path / "results.json").read_text())
    edit(raw)
    (tmp_path / "results.json").write_text(json.dumps(raw))
    with pytest.raises(ResultsError) as e:
        read_results(tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "results.json") in msg and f"{where} is " in msg


@pytest.mark.parametrize("text", ["[1, 2]", "{not json", b"\xff\xfe"], ids=["list", "json", "bytes"])
def test_not_a_results_file(tmp_path, text):
    path = tmp_path / "results.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ResultsError, match=str(path)) as e:
        read_results(path)
    assert "\n" not in str(e.value)
