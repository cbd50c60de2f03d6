"""bench/paper_row.py --dry-run on CPU with tiny data: the three stages run, a second call reuses the int8
base model and resumes the EOPM run to the new --epochs, and the carried folder stays small."""
from __future__ import annotations

import json
import shutil

import pytest

from bench import paper_row
from common.ckpt import load_checkpoint
from models.export import is_int8_export


@pytest.mark.slow
def test_dry_run_twice_reuses_the_base_and_resumes_the_eopm(cifar_root, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--data-root", str(cifar_root), "--out", str(out), "--dry-run"]
    assert paper_row.main(argv + ["--epochs", "1"]) == 0
    base = out / paper_row.BASE
    assert is_int8_export(load_checkpoint(base, kind="base"))
    stamp = base.stat().st_mtime_ns
    first = json.loads((out / paper_row.RESULTS).read_text())
    # the next box: only the carried folder, at another path, and no work folder
    shutil.rmtree(tmp_path / "out_work")
    moved = tmp_path / "box2" / "carried"
    moved.parent.mkdir()
    shutil.move(str(out), str(moved))
    out, base = moved, moved / paper_row.BASE
    argv = ["--data-root", str(cifar_root), "--out", str(out), "--dry-run"]
    assert paper_row.main(argv + ["--epochs", "2"]) == 0
    text = capsys.readouterr().out
    assert f"reusing {base}" in text and base.stat().st_mtime_ns == stamp
    assert "resuming" in (moved.parent / "carried_work" / "logs" / "eopm.log").read_text()   # -rt, not a new run
    run_dir = moved.parent / "carried_work" / "eopm"
    assert load_checkpoint(run_dir / "last.pt", kind="generator")["epoch"] == 2
    assert [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    files = [p for p in out.iterdir() if p.is_file()]
    assert len(files) <= paper_row.MAX_FILES
    assert all(p.stat().st_size <= 16 * 2 ** 20 for p in files)
    names = {p.name for p in files}
    assert {paper_row.BASE, paper_row.EOPM_TAR, paper_row.EOPM_BEST, paper_row.RESULTS, paper_row.ROW} <= names
    assert "EOPM epochs" in (out / paper_row.ROW).read_text() and first
