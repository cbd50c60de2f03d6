"""Universal input perturbation (generators/uip.py, docs/DESIGN.md §14; paper Table 11): one learned (3, H, W)
tensor, F(x) = clamp(x + tanh(p), -1, 1), 3·H·W parameters, 0 MACs, 0 TWMA, saved and loaded with its size."""
import pytest
import torch

from common.ckpt import CheckpointError
from eval.energy import energy_rows, model_costs
from eval.macs import count_macs
from generators import generator_info, get_generator, load_generator


def _images(b: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, size, size, generator=g) * 2 - 1  # (B, 3, H, W) in [-1, 1]


def _random_p(gen, seed: int = 1, scale: float = 2.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        gen.G.p.copy_(torch.randn(gen.G.p.shape, generator=g) * scale)  # large: tanh saturates, F clamps
    return gen.G.p.detach().clone()


@pytest.mark.parametrize("size", [32, 224])
def test_parameter_count_is_3hw(size):
    gen = get_generator("UIP", input_size=size)
    assert [tuple(p.shape) for p in gen.parameters()] == [(1, 3, size, size)]
    assert sum(p.numel() for p in gen.parameters()) == 3 * size * size
    assert model_costs("gen", "UIP", size)["params"] == 3 * size * size


def test_size_is_required_and_checked():
    with pytest.raises(ValueError, match="input_size"):
        get_generator("UIP")
    for bad in (0, -32, 3.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            get_generator("UIP", input_size=bad)
    gen = get_generator("UIP", input_size=32)
    with pytest.raises(ValueError, match=r"\(3, 32, 32\)"):
        gen(_images(1, 224))
    # the fully convolutional generators ignore input_size
    assert get_generator("ConvS", input_size=224)(_images(1, 32)).shape == (1, 3, 32, 32)
    assert generator_info("UIP")["sized"] and not generator_info("ConvS").get("sized", False)


def test_forward_is_clamped_x_plus_tanh_p_for_every_image():
    gen = get_generator("UIP", input_size=32)
    p = _random_p(gen)
    x = _images(4, 32)
    y = gen(x)
    torch.testing.assert_close(y, torch.clamp(x + torch.tanh(p), -1, 1))   # p (1,3,H,W) broadcast
    assert y.min() >= -1 and y.max() <= 1
    assert (y == 1).any() and (y == -1).any()            # the clamp is active, not vacuous
    torch.testing.assert_close(gen.residual(x)[0], gen.residual(x)[3])     # input-independent


def test_starts_as_identity():
    gen = get_generator("UIP", input_size=32)
    x = _images(2, 32)
    torch.testing.assert_close(gen(x), x)


def test_backward_matches_analytic_gradient():
    gen = get_generator("UIP", input_size=32).train()
    p = _random_p(gen, scale=0.5)
    x = _images(3, 32)
    w = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    (gen(x) * w).sum().backward()
    inside = ((x + torch.tanh(p)).abs() < 1).float()                        # (3, 3, H, W): clamp passes grad
    expected = ((w * inside).sum(0, keepdim=True) * (1 - torch.tanh(p) ** 2))  # (1, 3, H, W)
    torch.testing.assert_close(gen.G.p.grad, expected)
    assert gen.G.p.grad.abs().sum() > 0


def test_adam_step_moves_f_towards_a_target():
    gen = get_generator("UIP", input_size=32)
    x, target = _images(8, 32), _images(1, 32, seed=5) * 0.5
    opt = torch.optim.Adam(gen.parameters(), lr=0.05)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = (gen(x) - target).square().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]


@pytest.mark.parametrize("size", [32, 224])
def test_zero_macs_zero_twma(size):
    c = count_macs(get_generator("UIP", input_size=size), (3, size, size))
    assert c["macs"] == 0 and c["conv_macs"] == 0 and c["params"] == 3 * size * size
    assert model_costs("gen", "UIP", size)["twma"] == 0


def test_energy_saving_is_the_full_per_access_saving():
    row = energy_rows("resnet18", ["UIP"])[0]
    assert row["es_twma"] == pytest.approx(row["saving"]) and row["es_mac"] == pytest.approx(row["saving"])
    big = energy_rows("resnet18Py", ["UIP"], dataset="imagenet224")[0]
    assert big["params"] == 3 * 224 * 224


def test_checkpoint_round_trip_keeps_size(tmp_path):
    gen = get_generator("UIP", input_size=224)
    p = _random_p(gen)
    path = tmp_path / "uip.pt"
    torch.save({"kind": "generator", "generator": "UIP", "bits": 8, "arch": "resnet18Py",
                "dataset": "imagenet224", "state_dict": gen.state_dict()}, path)
    loaded, _ = load_generator(str(path), torch.device("cpu"))
    torch.testing.assert_close(loaded.G.p, p)
    assert not loaded.training and not loaded.G.p.requires_grad
    torch.save({"kind": "generator", "generator": "UIP", "bits": 8, "arch": "resnet18Py",
                "dataset": "imagenet224", "state_dict": {"G.q": p}}, path)
    with pytest.raises(CheckpointError, match="not a UIP state dict"):
        load_generator(str(path), torch.device("cpu"))
