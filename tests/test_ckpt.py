"""common.ckpt: the SHA-256 checksum in every checkpoint's zip comment refuses any flipped byte; files
without one load with a warning; every write failure is one WriteError line naming the file, with the
previous file untouched; wrong-typed fields are refused by name."""
from __future__ import annotations

import errno
import io
import warnings
from pathlib import Path

import pytest
import torch

from common import ckpt as ckpt_mod
from common.ckpt import CHECKSUM_TAG, CheckpointError, WriteError, load_checkpoint, save_checkpoint
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


@pytest.mark.slow
def test_every_single_byte_flip_is_refused(tmp_path):
    """Every byte (payload, zip records, the digest itself) through the check load_checkpoint makes
    first; where it sees no checksum layout (a flipped end-record signature), torch.load must fail;
    and a sample of the flips end to end through load_checkpoint on disk."""
    save_checkpoint(sample(), tmp_path / "a.pt")
    data = (tmp_path / "a.pt").read_bytes()
    accepted = []
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x10
        try:
            if not ckpt_mod.verify_checksum(io.BytesIO(bad), "a.pt"):
                torch.load(io.BytesIO(bad), weights_only=True)
                accepted.append(i)
        except CheckpointError as e:
            assert str(e).startswith("a.pt is corrupt: checksum mismatch") and "\n" not in str(e)
        except Exception:                                 # torch.load refused it (read_checkpoint_file: one line)
            pass
    assert accepted == []
    for i in range(0, len(data), 97):
        bad = bytearray(data)
        bad[i] ^= 0x01
        (tmp_path / "b.pt").write_bytes(bad)
        with pytest.raises(CheckpointError, match="b.pt"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_checkpoint(tmp_path / "b.pt")


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


def test_digest_is_the_sha256_of_the_archive_torch_wrote(tmp_path):
    """The format, computed independently: strip the comment, zero its length, hash."""
    import hashlib
    save_checkpoint(sample(), tmp_path / "a.pt")
    data = (tmp_path / "a.pt").read_bytes()
    comment = data[-len(CHECKSUM_TAG) - 64:]
    archive = data[:-len(comment) - 2] + b"\x00\x00"
    assert comment == CHECKSUM_TAG + hashlib.sha256(archive).hexdigest().encode()
    assert data[-len(comment) - 2:-len(comment)] == len(comment).to_bytes(2, "little")


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT])
def test_write_failure_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch, code):
    """ENOSPC/EROFS/EACCES simulated by a write that fails (tests run as root: chmod stops nothing)."""
    save_checkpoint(sample(), tmp_path / "last.pt")
    before = (tmp_path / "last.pt").read_bytes()

    def failing_write(obj, tmp):
        with open(tmp, "wb") as f:
            f.write(b"PK part of it landed")              # then the disk said no
        raise OSError(code, __import__("os").strerror(code))
    monkeypatch.setattr(ckpt_mod, "_write_with_checksum", failing_write)
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
    own ENOSPC: torch.save streams into /dev/full, which refuses every write."""
    real_open = open
    monkeypatch.setattr("builtins.open", lambda f, mode="r", *a, **k: real_open("/dev/full", "wb")
                        if str(f).endswith(".tmp") else real_open(f, mode, *a, **k))
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
    with pytest.raises(CheckpointError, match="not a checkpoint of this tool"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_checkpoint(tmp_path / "a.pt")
    assert ckpt_mod.verify_checksum(io.BytesIO(b"x"), "a.pt") is False
