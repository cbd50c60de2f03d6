"""Generator zoo (docs/DESIGN.md §6): every registered generator builds, has the exact parameter count, maps
[-1, 1] images to [-1, 1] images of the same shape, passes gradients to every parameter, and is
8-bit quantized. Parametrised over the registry, so a new generator is tested automatically."""
import pytest
import torch
import torch.nn as nn

from common.registry import UnknownName
from generators import generator_info, get_generator, list_generators
from models.quant import QuantMixin, quant_layers

PARAMS = {"ConvL": 723_273, "ConvS": 113_187, "DeConvL": 647_785, "DeConvS": 156_777,
          "UNetL": 482_771, "UNetS": 121_195,   # docs/DESIGN.md §6 (paper Table 7)
          "UIP": 3 * 32 * 32}                   # one (3, H, W) tensor at 32 px (docs/DESIGN.md §14)


def _images(b: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, size, size, generator=g) * 2 - 1  # (B, 3, H, W) in [-1, 1]


def test_registry_lists_the_generators():
    assert list_generators() == ["ConvL", "ConvS", "DeConvL", "DeConvS", "UNetL", "UNetS", "UIP"]


def test_unknown_name_lists_choices():
    with pytest.raises(UnknownName) as e:
        get_generator("ConvXL")
    msg = str(e.value)
    assert "ConvXL" in msg and all(n in msg for n in list_generators())


@pytest.mark.parametrize("name", list_generators())
def test_parameter_count_exact(name):
    assert name in PARAMS, f"add the exact parameter count of the new generator {name!r} to PARAMS"
    gen = get_generator(name, input_size=32)
    assert sum(p.numel() for p in gen.parameters()) == PARAMS[name]
    assert sum(p.numel() for p in gen.G.parameters()) == PARAMS[name]


@pytest.mark.parametrize("name", list_generators())
def test_every_conv_is_8bit_quantized(name):
    gen = get_generator(name, input_size=32)
    convs = [m for m in gen.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    quant = [m for _, m in quant_layers(gen)]
    assert len(quant) == len(convs)
    assert convs or generator_info(name)["family"] == "perturbation"  # UIP is one tensor, no layers
    assert all(isinstance(m, QuantMixin) and m.bits == 8 and not m.is_faulty for m in convs)


@pytest.mark.slow
@pytest.mark.parametrize("size,batch", [(32, 2), (224, 1)])
@pytest.mark.parametrize("name", list_generators())
def test_forward_backward(name, size, batch):
    torch.manual_seed(0)
    gen = get_generator(name, input_size=size).train()
    x = _images(batch, size)
    y = gen(x)
    assert y.shape == x.shape
    assert y.min() >= -1 and y.max() <= 1
    y.square().mean().backward()
    for pname, p in gen.named_parameters():
        assert p.grad is not None, f"no gradient reaches {pname}"
        assert torch.isfinite(p.grad).all(), pname
        if p.ndim > 1:  # conv biases before a training-mode BN have an exactly-zero gradient
            assert p.grad.abs().sum() > 0, f"zero gradient for {pname}"


@pytest.mark.slow
@pytest.mark.parametrize("name", list_generators())
def test_eval_batch_one_is_clamped_residual(name):
    torch.manual_seed(0)
    gen = get_generator(name, input_size=32).eval()
    x = _images(1, 32)
    with torch.no_grad():
        y, r = gen(x), gen.residual(x)
    assert r.shape == x.shape
    torch.testing.assert_close(y, torch.clamp(x + r, -1, 1))
    if generator_info(name)["bounded_residual"]:  # Conv/DeConv residuals end in tanh; the UNet's is unbounded
        assert r.abs().max() <= 1


@pytest.mark.slow
@pytest.mark.parametrize("name", list_generators(family="unet"))
def test_unet_up_padding_variants(name):
    """Released code: padding 1 -> 2H-2 up-conv pixels, zero-padded back; padding 0: exact 2H."""
    x = _images(1, 32)
    sizes = {}
    for pad in (0, 1):
        gen = get_generator(name, up_padding=pad).eval()
        assert sum(p.numel() for p in gen.parameters()) == PARAMS[name]
        up = gen.G.up[0].up
        hook = up.register_forward_hook(
            lambda m, i, o, pad=pad: sizes.__setitem__(pad, (i[0].shape[-1], o.shape[-1])))
        with torch.no_grad():
            assert gen(x).shape == x.shape
        hook.remove()
    assert sizes[0] == (4, 8) and sizes[1] == (4, 6)
    with pytest.raises(ValueError):
        get_generator(name, up_padding=2)
