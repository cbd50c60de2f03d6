"""Fast paths agree with the plain path: batched perturbed models (vmap), fault-map prefetching,
on-device data, --amp's fault bits, and the GPU check's CPU dry run. CUDA variants run with -m cuda."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from bitflip import FaultConfig, perturb
from bitflip.ensemble import perturbed_logits
from bitflip.official import official_masks_np
from bitflip.prefetch import FaultPrefetcher
from datasets.device import DeviceBatches, affine_translate_scale, crop_with_padding, to_signed
from eval.neuralfuse import evaluate_seeds
from generators import get_generator
from models import get_model
from models.quant import quant_layers
from train.eopm import eopm_step

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
FAULT = FaultConfig("official", 0.02)


def _model(arch="resnet18", dtype=torch.float64, device="cpu"):
    torch.manual_seed(0)
    return get_model(arch, 10).to(device, dtype).eval().requires_grad_(False)


def _z_grads(model, x, y, seeds, batch):
    z = x.clone().requires_grad_(True)
    logits = []
    for chunk, lg in perturbed_logits(model, z, FAULT, seeds, batch=batch):
        F.cross_entropy(lg.flatten(0, 1), y.repeat(len(chunk)), reduction="sum").backward()
        logits.append(lg.detach())
    return torch.cat(logits), z.grad


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["resnet18", "vgg11"])
def test_batched_models_equal_loop(arch):
    """vmap over stacked faulty weights = the in-place loop: logits and input gradient (float64)."""
    model = _model(arch)
    x, y = torch.randn(2, 3, 32, 32, dtype=torch.float64), torch.tensor([1, 7])
    seeds = [11, 12, 13]
    loop_logits, loop_grad = _z_grads(model, x, y, seeds, batch=1)
    for batch in (2, 3):
        logits, grad = _z_grads(model, x, y, seeds, batch=batch)
        torch.testing.assert_close(logits, loop_logits, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(grad, loop_grad, rtol=1e-9, atol=1e-12)
    assert all(not layer.is_faulty and not layer._as_given for _, layer in quant_layers(model))
    clean = model(x)
    assert not torch.allclose(clean, loop_logits[0])          # the faults did change the model


@pytest.mark.slow
def test_eopm_step_batched_same_generator_gradient():
    base = _model("vgg11")
    x, y = torch.rand(4, 3, 32, 32, dtype=torch.float64) * 2 - 1, torch.tensor([0, 3, 5, 9])
    grads = []
    for k in (1, 4):
        torch.manual_seed(1)
        gen = get_generator("ConvS").to(torch.float64)
        m = eopm_step(gen, base, x, y, FAULT, [3, 4, 5, 6], lam=5.0, batch_models=k)
        grads.append(([p.grad.clone() for p in gen.parameters()], {key: float(v) for key, v in m.items()}))
    for a, b in zip(grads[0][0], grads[1][0]):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)
    assert grads[0][1] == pytest.approx(grads[1][1], rel=1e-6)      # metrics are float32 sums


@pytest.mark.slow
def test_amp_leaves_fault_bits_unchanged():
    """bf16 autocast changes float compute only: the faulty int8 weights and Δ are the same."""
    model = _model("resnet18", torch.float32)
    perturb(model, FAULT, 5)
    plain = [(layer.fault_weight.clone(), layer.int8_weight()[1].clone()) for _, layer in quant_layers(model)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        perturb(model, FAULT, 5)
        under_amp = [(layer.fault_weight.clone(), layer.int8_weight()[1].clone()) for _, layer in quant_layers(model)]
    for (w1, d1), (w2, d2) in zip(plain, under_amp):
        assert w2.dtype == torch.float32 and torch.equal(w1, w2) and torch.equal(d1, d2)


def test_prefetched_maps_are_the_maps():
    official_masks_np.cache_clear()
    with FaultPrefetcher(FAULT, workers=2) as pf:
        pf.schedule([101, 102, 103])
        pf.wait([101, 102, 103])
        assert official_masks_np.cache_info().currsize == 3
    hits = official_masks_np.cache_info().hits
    prefetched = official_masks_np(102, FAULT.ber, 8, -1)         # the call inject_cfg makes
    assert official_masks_np.cache_info().hits == hits + 1        # served by the prefetched entry
    fresh = official_masks_np.__wrapped__(102, FAULT.ber, 8, -1)
    assert all(np.array_equal(a, b) for a, b in zip(prefetched, fresh))
    with FaultPrefetcher(FaultConfig("official", 0.01), workers=1) as pf:
        pf.schedule([-5])                                         # numpy refuses a negative seed
        with pytest.raises(ValueError):
            pf.wait([-5])


@pytest.mark.slow
def test_evaluation_batched_equals_loop():
    base = _model("vgg11", torch.float32)
    gen = get_generator("ConvS").eval()
    batches = [(torch.rand(8, 3, 32, 32) * 2 - 1, torch.randint(0, 10, (8,))) for _ in range(2)]
    one = evaluate_seeds(base, gen, batches, torch.device("cpu"), FAULT, [1, 2, 3])
    three = evaluate_seeds(base, gen, batches, torch.device("cpu"), FAULT, [1, 2, 3], batch_models=3)
    assert one["per_seed"] == three["per_seed"]


def test_device_data_matches_torchvision_ops():
    x = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    tx, ty = torch.tensor([0., 3, -5, 11, -11]), torch.tensor([0., -2, 4, 7, -9])
    s = torch.tensor([1.0, 0.7, 1.3, 0.93, 1.21])
    ref = torch.stack([TF.affine(x[i], angle=0.0, translate=[int(tx[i]), int(ty[i])], scale=float(s[i]),
                                 shear=[0.0, 0.0], interpolation=InterpolationMode.NEAREST) for i in range(5)])
    assert torch.equal(affine_translate_scale(x, tx, ty, s), ref)
    g = torch.Generator().manual_seed(0)
    crops = crop_with_padding(x, g, 4)
    g.manual_seed(0)
    oy, ox = torch.randint(0, 9, (5,), generator=g), torch.randint(0, 9, (5,), generator=g)
    padded = TF.pad(x, [4])
    for i in range(5):
        assert torch.equal(crops[i], TF.crop(padded[i], int(oy[i]), int(ox[i]), 32, 32))
    expected = TF.to_tensor(x[0].permute(1, 2, 0).numpy()) * 2 - 1    # ToTensor, then x*2-1
    assert torch.equal(to_signed(x[:1])[0], expected)


def test_device_batches_follow_dataloader_order():
    n = 37
    g = torch.Generator()
    loader = DataLoader(TensorDataset(torch.arange(n)), batch_size=8, shuffle=True, generator=g)
    batches = DeviceBatches(torch.zeros(n, 3, 2, 2, dtype=torch.uint8), list(range(n)), 8, torch.device("cpu"),
                            shuffle=True)
    for seed in (0, 5):
        g.manual_seed(seed)
        batches.generator.manual_seed(seed)
        assert torch.equal(torch.cat([b[0] for b in loader]), torch.cat([y for _, y in batches]))
    assert len(batches) == len(loader) == 5


@pytest.mark.slow
def test_amp_on_cpu_is_a_one_line_error(tmp_path):
    proc = subprocess.run([sys.executable, "zs_main.py", "vgg11", "train", "cifar10", "--device", "cpu", "--amp",
                           "--data-root", str(tmp_path), "--no-download", "--run-dir", str(tmp_path / "r")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "--amp" in proc.stderr


@pytest.mark.slow
def test_gpu_check_dry_run(cifar_root, tmp_path):
    """The GPU check's steps, on CPU with tiny limits: every command and file it relies on works."""
    proc = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--dry-run", "--data-root", str(cifar_root),
                           "--out", str(tmp_path / "check")], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "gpu-check passed" in proc.stdout and (tmp_path / "check" / "summary.md").is_file()
    logs = {p.name.split("_", 1)[1]: p.read_text() for p in (tmp_path / "check").glob("*.log")}
    assert "RESULT speedup_vs_reload=" in logs["bench_eval.log"]
    assert "RESULT arch=vgg11 speedup_vs_original=" in logs["bench_eopm_step.log"]


# ----------------------------------------------------------------------------- CUDA
@pytest.mark.cuda
@CUDA
def test_batched_models_on_cuda_close_to_loop(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)   # TF32 rounds dense and grouped convs apart
    model = _model("resnet18", torch.float32, "cuda")
    x, y = torch.randn(16, 3, 32, 32, device="cuda"), torch.randint(0, 10, (16,), device="cuda")
    loop_logits, loop_grad = _z_grads(model, x, y, [1, 2, 3, 4], batch=1)
    logits, grad = _z_grads(model, x, y, [1, 2, 3, 4], batch=4)
    torch.testing.assert_close(logits, loop_logits, rtol=1e-3, atol=1e-4)
    assert ((grad - loop_grad).norm() / loop_grad.norm()) < 1e-3


@pytest.mark.cuda
@CUDA
def test_evaluation_on_cuda_equals_cpu():
    gen = get_generator("ConvS").eval()
    batches = [(torch.rand(64, 3, 32, 32) * 2 - 1, torch.randint(0, 10, (64,))) for _ in range(2)]
    cpu = evaluate_seeds(_model("vgg11", torch.float32), gen, batches, torch.device("cpu"), FAULT, [1, 2])
    cuda_batches = [(x.cuda(), y.cuda()) for x, y in batches]
    gpu = evaluate_seeds(_model("vgg11", torch.float32, "cuda"), gen.cuda(), cuda_batches, torch.device("cuda"),
                         FAULT, [1, 2], batch_models=2)
    for a, b in zip(cpu["per_seed"], gpu["per_seed"]):             # float order may flip an image or two
        assert abs(a["PA"] - b["PA"]) <= 2 * 100 / 128 and abs(a["PA_NF"] - b["PA_NF"]) <= 2 * 100 / 128


@pytest.mark.cuda
@CUDA
def test_device_batches_on_cuda():
    x = torch.randint(0, 256, (100, 3, 32, 32), dtype=torch.uint8)
    from datasets.base import DATASETS
    batches = DeviceBatches(x, list(range(100)), 32, torch.device("cuda"),
                            augment=DATASETS.get("gtsrb").device_augment(True), shuffle=True)
    out = list(batches)
    assert len(out) == 4 and out[0][0].is_cuda and out[0][0].dtype == torch.float32
    assert sorted(torch.cat([y for _, y in out]).tolist()) == list(range(100))
    assert all(-1 <= float(b.min()) and float(b.max()) <= 1 for b, _ in out)


@pytest.mark.cuda
@CUDA
def test_amp_step_on_cuda_close_to_fp32():
    base = _model("resnet18", torch.float32, "cuda")
    x, y = torch.rand(32, 3, 32, 32, device="cuda") * 2 - 1, torch.randint(0, 10, (32,), device="cuda")
    losses = []
    for amp in (False, True):
        torch.manual_seed(0)
        gen = get_generator("ConvL").cuda()
        losses.append(float(eopm_step(gen, base, x, y, FAULT, [1, 2], 5.0, amp=amp)["loss"]))
    assert losses[1] == pytest.approx(losses[0], rel=0.05)


def test_to_signed_divides_by_a_tensor_on_the_batchs_device():
    """CUDA computes `tensor / 255` as tensor * fl(1/255) (ATen div_true_kernel_cuda): 126 of the 256 byte
    values would land one ulp off ToTensor's x / 255. The meta device shows the divisor on CPU."""
    from tests.conftest import divisors
    with divisors() as rec:
        to_signed(torch.empty(2, 3, 4, 4, dtype=torch.uint8, device="meta"))
    assert rec.divisors and all(isinstance(d, torch.Tensor) and d.device.type == "meta" for d in rec.divisors)


@pytest.mark.cuda
@CUDA
def test_to_signed_on_cuda_is_bit_identical_to_totensor():
    x = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).expand(1, 3, 16, 16).contiguous()
    expected = TF.to_tensor(x[0].permute(1, 2, 0).numpy()) * 2 - 1
    assert torch.equal(to_signed(x.cuda())[0].cpu(), expected)
