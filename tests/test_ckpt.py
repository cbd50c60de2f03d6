"""common.ckpt: the SHA-256 checksum in every checkpoint's zip comment refuses any flipped byte; files
without one load with a warning; every write failure is one WriteError line naming the file, with the
previous file untouched; wrong-typed fields are refused by name."""
from __future__ import annotations

import errno
import warnings
from pathlib import Path

import pytest
import torch

from common import ckpt as ckpt_mod
from common.ckpt import (CHECKSUM_TAG, CheckpointError, WriteError, atomic_write, load_checkpoint,
                         save_checkpoint)
from common.runs import UsageError


def sample() -> dict:
    g = torch.Generator().manual_seed(0)
    return {"kind": "base", "arch": "vgg11", "dataset": "cifar10", "epoch": 3, "best": 41.5,
            "state_dict": {"w": torch.randint(-128, 128, (64, 9), dtype=torch.int8, generator=g),
                           "scale": torch.rand(64, generator=g), "n": torch.tensor(7)},
            "config": {"run": {"arch": "vgg11"}}, "metrics": {"epoch": 3, "val_acc": 41.5}}


def test_round_trip_is_exact_and_carries_a_checksum(tmp_path):
    obj = sample()
    save_checkpoint(obj, tmp_path / "a.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # a checksummed file loads without a warning
        back = load_checkpoint(tmp_path / "a.pt")
    for k, v in obj["state_dict"].items():
        assert back["state_dict"][k].dtype == v.dtype and torch.equal(back["state_dict"][k], v)
    assert {k: back[k] for k in obj if k != "state_dict"} == {k: v for k, v in obj.items() if k != "state_dict"}
    assert CHECKSUM_TAG in (tmp_path / "a.pt").read_bytes()[-100:]
    plain = torch.load(tmp_path / "a.pt", weights_only=True)          # still a plain torch file
    assert torch.equal(plain["state_dict"]["w"], obj["state_dict"]["w"])


def test_every_single_byte_flip_is_refused(tmp_path, monkeypatch):
    save_checkpoint(sample(), tmp_path / "a.pt")
    data = (tmp_path / "a.pt").read_bytes()
    flipped = {}
    monkeypatch.setattr(Path, "read_bytes", lambda self: flipped["bytes"])   # no disk I/O per byte
    accepted = []
    for i in range(len(data)):                           # every byte: payload, zip records, the digest
        bad = bytearray(data)
        bad[i] ^= 0x10
        flipped["bytes"] = bytes(bad)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                load_checkpoint(tmp_path / "a.pt")
            accepted.append(i)
        except CheckpointError as e:
            assert "a.pt" in str(e) and "\n" not in str(e)
    assert accepted == []


def test_a_flipped_weight_byte_says_checksum_mismatch(tmp_path):
    obj = sample()
    save_checkpoint(obj, tmp_path / "a.pt")
    data = bytearray((tmp_path / "a.pt").read_bytes())
    at = bytes(data).find(obj["state_dict"]["w"].numpy().tobytes()[:32])   # the int8 weights' own bytes
    assert at > 0
    data[at + 5] ^= 0x01
    (tmp_path / "a.pt").write_bytes(data)
    with pytest.raises(CheckpointError, match=r"a\.pt is corrupt: checksum mismatch"):
        load_checkpoint(tmp_path / "a.pt")


def test_checkpoint_without_checksum_loads_with_one_warning(tmp_path):
    obj = {"format_version": 1, **sample()}
    torch.save(obj, tmp_path / "old.pt")                 # as written before checksums
    with pytest.warns(UserWarning, match="old.pt has no checksum") as record:
        back = load_checkpoint(tmp_path / "old.pt")
    assert len(record) == 1 and torch.equal(back["state_dict"]["w"], obj["state_dict"]["w"])


def test_checksum_costs_less_than_the_write_itself(tmp_path):
    """Not a timing test: the serialized bytes are hashed in memory, so saving reads nothing back."""
    reads = []
    real = Path.read_bytes
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Path, "read_bytes", lambda self: reads.append(self) or real(self))
        save_checkpoint(sample(), tmp_path / "a.pt")
    assert reads == []


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT])
def test_write_failure_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch, code):
    """ENOSPC/EROFS/EACCES simulated by a write that fails (tests run as root: chmod stops nothing)."""
    save_checkpoint(sample(), tmp_path / "last.pt")
    before = (tmp_path / "last.pt").read_bytes()

    def failing_write(self, data):
        with open(self, "wb") as f:
            f.write(data[:100])                           # part of it landed, then the disk said no
        raise OSError(code, __import__("os").strerror(code))
    monkeypatch.setattr(Path, "write_bytes", failing_write)
    with pytest.raises(WriteError) as e:
        save_checkpoint({**sample(), "epoch": 4}, tmp_path / "last.pt")
    msg = str(e.value)
    assert isinstance(e.value, UsageError) and str(tmp_path / "last.pt") in msg and "\n" not in msg
    assert __import__("os").strerror(code) in msg
    assert (tmp_path / "last.pt").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]              # no temporary file left


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_real_disk_full_error_is_one_line(tmp_path, monkeypatch):
    """The case found (torch.save onto a full disk: RuntimeError ... unexpected pos), with the kernel's
    own ENOSPC: the checkpoint's bytes go to /dev/full, which refuses every write."""
    real = Path.write_bytes
    monkeypatch.setattr(Path, "write_bytes", lambda self, data: real(Path("/dev/full"), data))
    with pytest.raises(WriteError, match="cannot write .*last.pt: No space left on device; free some space"):
        save_checkpoint(sample(), tmp_path / "last.pt")
    assert not list(tmp_path.iterdir())


def test_a_folder_in_the_way_is_one_line(tmp_path):
    from common.runs import write_json
    (tmp_path / "args.json").mkdir()
    with pytest.raises(WriteError, match="cannot write .*args.json: Is a directory"):
        write_json(tmp_path / "args.json", {"a": 1})
    (tmp_path / "f").write_text("a file")
    with pytest.raises(WriteError, match="cannot write .*f/last.pt: .*f is a file, not a folder"):
        save_checkpoint(sample(), tmp_path / "f" / "last.pt")


def test_wrong_typed_state_dict_is_refused_by_name(tmp_path):
    save_checkpoint({"kind": "base", "state_dict": [1, 2]}, tmp_path / "a.pt")
    with pytest.raises(CheckpointError, match="'state_dict' is a list"):
        load_checkpoint(tmp_path / "a.pt")


def test_tiny_garbage_file_is_unreadable_not_corrupt(tmp_path):
    (tmp_path / "a.pt").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_checkpoint(tmp_path / "a.pt")
    assert ckpt_mod.verify_checksum(b"x", "a.pt") is False
