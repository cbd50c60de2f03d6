"""MAC counting by layer hooks (eval/macs.py) against hand counts and the paper's Table 7 (docs/DESIGN.md §10)."""
import pytest
import torch.nn as nn

from eval.macs import count_macs, layer_stats
from generators import generator_info, get_generator, list_generators

# Paper Table 7 (ptflops convention). The UNet figures are for the exact 2x up-convolution (up_padding=0).
PAPER_32 = {"ConvL": 80.5e6, "ConvS": 10.34e6, "DeConvL": 64.69e6, "DeConvS": 22.44e6,
            "UNetL": 41.41e6, "UNetS": 10.58e6}
PAPER_224 = {"ConvL": 3.94e9, "ConvS": 506.78e6, "DeConvL": 3.17e9, "DeConvS": 1.1e9,
             "UNetL": 2.03e9, "UNetS": 518.47e6}
NOT_IN_TABLE7 = {"UIP": 0}  # one added tensor, no layers: 0 MACs at any size (docs/DESIGN.md §14)
PAPER_BASE_32 = {"resnet18": 557.14e6, "resnet50": 1.31e9, "vgg11": 153.5e6, "vgg16": 314.43e6,
                 "vgg19": 399.47e6}
GEN_TOL = 0.002   # Table 7 prints 3 significant digits (3.94G = +-0.13%); measured gaps <= 0.11%
BASE_TOL = 0.002  # Table 7 prints 3-5 significant digits; measured gaps <= 0.2% (resnet50 1.3076G vs 1.31G)


def _paper_variant(name: str, size: int) -> nn.Module:
    exact = "up_padding" in generator_info(name)["options"]
    return get_generator(name, up_padding=0) if exact else get_generator(name, input_size=size)


def test_hand_count_small_net():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Upsample(scale_factor=2), nn.ConvTranspose2d(4, 2, 4, 2, 1, bias=False),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 5))
    conv = 8 * 8 * 3 * 9 * 4          # output positions x in_ch x kernel area x out_ch
    deconv = 16 * 16 * 4 * 16 * 2     # transposed conv counted by its *output* positions
    linear = 2 * 5
    extras = (256 + 2 * 256 + 256    # conv bias, BN (2 per element), ReLU
              + 256 + 256             # max-pool input, upsample output
              + 2 * 256 + 5)          # adaptive pool input, linear bias
    c = count_macs(net, (3, 8, 8))
    assert c["conv_macs"] == conv + deconv + linear
    assert c["macs"] == conv + deconv + linear + extras
    assert c["params"] == sum(p.numel() for p in net.parameters())


def test_layer_stats_records():
    recs = layer_stats(get_generator("ConvL"), (3, 32, 32))
    first = recs[0]
    assert (first["name"], first["kind"]) == ("G.body.0.0", "conv")
    assert first["weights"] == 32 * 3 * 9 and first["out_shape"] == (32, 32, 32)
    assert first["out_positions"] == 1024 and first["kernel"] == (3, 3) and first["stride"] == (1, 1)
    assert first["padding"] == (1, 1) and (first["in_ch"], first["out_ch"]) == (3, 32)
    convs = [r for r in recs if r["kind"] in ("conv", "deconv", "linear")]
    assert sum(r["weights"] for r in convs) == sum(m.weight.numel() for m in get_generator("ConvL").modules()
                                                   if isinstance(m, nn.Conv2d))
    deconv = [r for r in layer_stats(get_generator("DeConvS"), (3, 32, 32)) if r["kind"] == "deconv"]
    assert [r["out_shape"][1] for r in deconv] == [8, 16, 32]


def test_reused_module_counted_per_call_and_modes_restored():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.relu = nn.ReLU()
            self.bn = nn.BatchNorm2d(3)

        def forward(self, x):
            return self.relu(self.bn(self.relu(x)))

    net = Twice().train()
    net.bn.eval()  # a frozen BN must stay frozen
    c = count_macs(net, (3, 4, 4))
    assert c["by_kind"]["act"] == 2 * 48 and c["macs"] == 2 * 48 + 2 * 48
    assert net.training and not net.bn.training and net.relu.training


def test_meta_matches_real_forward():
    gen = get_generator("UNetS")
    assert count_macs(gen, (3, 32, 32)) == count_macs(gen, (3, 32, 32), device="meta")
    assert next(gen.parameters()).device.type == "cpu"


@pytest.mark.parametrize("name", list_generators())
def test_generator_macs_32px_match_paper(name):
    c = count_macs(_paper_variant(name, 32), (3, 32, 32), device="meta")
    assert c["macs"] == pytest.approx({**PAPER_32, **NOT_IN_TABLE7}[name], rel=GEN_TOL)
    assert c["conv_macs"] < c["macs"] or name in NOT_IN_TABLE7


@pytest.mark.parametrize("name", list_generators())
def test_generator_macs_224px_match_paper(name):
    c = count_macs(_paper_variant(name, 224), (3, 224, 224), device="meta")
    assert c["macs"] == pytest.approx({**PAPER_224, **NOT_IN_TABLE7}[name], rel=GEN_TOL)


@pytest.mark.parametrize("name", list_generators(family="unet"))
def test_unet_released_padding_is_4_percent_lower_at_32px(name):
    """docs/DESIGN.md §10: with the released code's up_padding=1 the UNet MACs come out about 4% under Table 7."""
    default = count_macs(get_generator(name), (3, 32, 32), device="meta")["macs"]
    assert 0.955 < default / PAPER_32[name] < 0.965


@pytest.mark.parametrize("name", list(PAPER_BASE_32))
def test_base_model_macs_32px_match_paper(name):
    from models import get_model
    net = get_model(name, num_classes=10)
    c = count_macs(net, (3, 32, 32), device="meta")
    assert c["macs"] == pytest.approx(PAPER_BASE_32[name], rel=BASE_TOL)
