"""Model zoo (docs/DESIGN.md §4) and the quantization mechanism, parametrised over the registry."""
import pytest
import torch

from models import get_model, list_models, model_info
from models.quant import QUANT_TYPES, fake_quant, quant_layers, quantize_int, qmax_for

# Exact parameter counts at 10 classes. torchvision-style: torchvision's own definitions (docs/DESIGN.md
# §4). CIFAR-style: counted by hand from the architecture in docs/DESIGN.md §4 (conv weights, conv
# biases for VGG, BN weight+bias, the final Linear), e.g. VGG11 = 9,225,984 conv/BN + 5,130 Linear.
PARAMS = {"resnet18": 11_173_962, "resnet50": 23_520_842, "vgg11": 9_231_114, "vgg16": 14_728_266,
          "vgg19": 20_040_522, "resnet18Py": 11_181_642, "resnet50Py": 23_528_522, "vgg11Py": 128_812_810,
          "vgg16Py": 134_309_962, "vgg19Py": 139_622_218}


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name", list_models())
def test_param_counts(name):
    assert name in PARAMS, f"add the exact parameter count of the new model {name!r} to PARAMS"
    with torch.device("meta"):                      # no allocation or init: counts only
        m = get_model(name, 10)
    assert n_params(m) == PARAMS[name]


def test_registry_metadata():
    for name in list_models():
        info = model_info(name)
        assert info["family"] in ("resnet", "vgg") and info["style"] in ("cifar", "torchvision")
        assert info["input_size"] == {"cifar": 32, "torchvision": 224}[info["style"]]


CIFAR_STYLE = list_models(style="cifar")
TV_STYLE = list_models(style="torchvision")
# The torchvision-style VGGs hold ~130M parameters each: build them once (10 classes) to keep CI fast;
# class counts are checked on the CIFAR-style zoo and resnet18Py.
CASES = [(n, c) for n in CIFAR_STYLE + ["resnet18Py"] for c in (10, 43, 100)] + \
        [(n, 10) for n in TV_STYLE if n != "resnet18Py"]


@pytest.mark.slow
@pytest.mark.parametrize("name,classes", CASES)
def test_forward_backward(name, classes):
    torch.manual_seed(0)
    m = get_model(name, classes)
    x = torch.randn(2, 3, 32, 32)                   # Py variants also run at 32 px (adaptive pools)
    out = m(x)
    assert out.shape == (2, classes)
    out.sum().backward()
    layers = list(quant_layers(m))
    assert layers, "every model must have quantized layers"
    assert all(l.weight.grad is not None and l.weight.grad.abs().sum() > 0 for _, l in layers)
    # every Conv2d/Linear is quantized, none left in float
    assert all(isinstance(mod, QUANT_TYPES) for mod in m.modules()
               if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)))


def test_unknown_model_lists_choices():
    with pytest.raises(KeyError, match="choose from .*resnet18"):
        get_model("resnet34", 10)


@pytest.mark.parametrize("bits", [8, 4])
def test_quantize_dequantize_error(bits):
    torch.manual_seed(1)
    w = torch.randn(64, 32, 3, 3) * 0.05
    q, delta = quantize_int(w, bits)
    assert q.dtype == torch.int8
    assert int(q.abs().max()) == qmax_for(bits)                # the max |W| maps to the top level
    assert q.min() >= -qmax_for(bits) and q.max() <= qmax_for(bits)
    assert torch.allclose(delta, w.abs().max() / qmax_for(bits))
    err = (q.float() * delta - w).abs()
    assert err.max() <= delta / 2 + 1e-7
    assert torch.equal(fake_quant(w, bits), q.float() * delta)


def test_round_half_to_even():
    w = torch.tensor([127.0, 0.5, 1.5, 2.5, -0.5, -2.5])    # Δ = 1
    q, delta = quantize_int(w)
    assert delta.item() == 1.0
    assert q.tolist() == [127, 0, 2, 2, 0, -2]


def test_ste_passes_gradient():
    w = torch.randn(10, requires_grad=True)
    g = torch.randn(10)
    fake_quant(w).backward(g)
    assert torch.equal(w.grad, g)


@pytest.mark.slow
def test_fault_weights_use_clean_delta_and_restore():
    torch.manual_seed(2)
    m = get_model("vgg11", 10).eval()
    x = torch.randn(2, 3, 32, 32)
    clean = m(x)
    name, layer = next(iter(quant_layers(m)))
    q, delta = layer.int8_weight()
    layer.set_fault(torch.full_like(q, -128))                 # -128 is allowed, no clamp
    assert torch.equal(layer.quant_weight(), torch.full_like(layer.weight, -128) * delta)
    assert not torch.equal(m(x), clean)
    layer.set_fault(None)
    assert torch.equal(m(x), clean)
    with pytest.raises(ValueError, match="int8"):
        layer.set_fault(q.float())


def test_load_base_rebuilds_from_checkpoint_fields(tmp_path):
    from common.ckpt import CheckpointError, save_checkpoint
    from common.runs import UsageError
    from models import base_checkpoint_meta, load_base
    gtsrb = {"num_classes": 43, "input_size": 32}                 # the dataset's shape comes from the caller
    net = get_model("vgg11", 43)
    meta = base_checkpoint_meta("vgg11", "gtsrb", 43, 8)
    old = {k: v for k, v in meta.items() if k != "bits"}          # written before --bits existed
    save_checkpoint({**old, "state_dict": net.state_dict()}, tmp_path / "old.pt")
    loaded = load_base(tmp_path / "old.pt", "vgg11", "gtsrb", 8, torch.device("cpu"), **gtsrb)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), net.state_dict().values()))
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    with pytest.raises(UsageError, match="vgg16"):
        load_base(tmp_path / "old.pt", "vgg16", "gtsrb", 8, torch.device("cpu"), **gtsrb)
    with pytest.raises(UsageError, match="8-bit"):
        load_base(tmp_path / "old.pt", "vgg11", "gtsrb", 4, torch.device("cpu"), **gtsrb)
    save_checkpoint({**{k: v for k, v in old.items() if k != "num_classes"}, "state_dict": {}}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="num_classes"):
        load_base(tmp_path / "x.pt", "vgg11", "gtsrb", 8, torch.device("cpu"), **gtsrb)


def test_delta_divides_by_a_tensor_on_the_weights_device():
    """CUDA computes `tensor / python_number` as tensor * fl(1/number) (ATen div_true_kernel_cuda), one ulp
    off the quotient for ~4% of 8-bit maxima: Δ and the int8 codes would differ from the CPU's. The meta
    device shows on CPU what the division gets: a divisor on the weight's device, not a CPU scalar."""
    from models.quant import weight_delta
    from tests.conftest import divisors
    w = torch.empty(8, 3, 3, 3, device="meta")
    with divisors() as rec:
        weight_delta(w)
    assert rec.divisors and all(isinstance(d, torch.Tensor) and d.device == w.device for d in rec.divisors)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_quantize_int_same_delta_and_codes_on_cuda():
    """max|W| = 0.0500200092792511: max / 127 and max * fl(1/127) differ by one ulp in float32."""
    torch.manual_seed(0)
    w = torch.rand(4096) * 0.1 - 0.05
    w[7] = 0.0500200092792511
    q, delta = quantize_int(w)
    q_cuda, delta_cuda = quantize_int(w.cuda())
    assert torch.equal(delta_cuda.cpu(), delta) and torch.equal(q_cuda.cpu(), q)
