import pytest
import torch

from medfuse.dran.network import DRAN, PyramidAttention, pooled_mask


@pytest.mark.parametrize("size", [(17, 17), (31, 20), (2, 3), (64, 33)])
def test_any_size_keeps_its_shape(size):
    torch.manual_seed(0)
    model = DRAN(width=8).eval()
    image = torch.rand(2, 1, *size)
    features = model.encode(image)
    assert features.shape == (2, 8, *size)
    assert model(image).shape == image.shape


def test_odd_size_matches_padded_computation_inside():
    """Cropping after reflect padding: the features of an odd image equal the top-left of
    the features of its reflect-padded even version."""
    torch.manual_seed(1)
    model = DRAN(width=8).eval()
    image = torch.rand(1, 1, 15, 21)
    padded = torch.nn.functional.pad(image, (0, 1, 0, 1), mode="reflect")
    torch.testing.assert_close(model.encode(image), model.encode(padded)[..., :15, :21])


def test_default_width_has_published_size():
    parameters = sum(p.numel() for p in DRAN().parameters())
    assert 300_000 <= parameters <= 500_000


def test_pyramid_attention_shares_one_convolution_in_a_chain():
    torch.manual_seed(2)
    block = PyramidAttention(4)
    z = torch.rand(1, 4, 8, 8)
    c1 = block.conv(z)
    c2 = block.conv(c1)
    c3 = block.conv(c2)
    expected = torch.sigmoid(pooled_mask(z)) * (c1 + c2 + c3)
    torch.testing.assert_close(block(z), expected)
    assert len(list(block.parameters())) == 2  # one weight, one bias


def test_pooled_mask_is_block_mean():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    mask = pooled_mask(x)
    assert mask[0, 0, 0, 0] == mask[0, 0, 1, 1] == (0 + 1 + 4 + 5) / 4


def test_bad_width():
    with pytest.raises(ValueError, match="even"):
        DRAN(width=7)


def test_sobel_magnitude_of_a_vertical_step():
    from medfuse.dran.network import SobelMagnitude

    step = torch.zeros(1, 2, 6, 6)
    step[0, 1, :, 3:] = 1.0
    magnitude = SobelMagnitude(2)(step)
    assert magnitude[0, 0].abs().sum() == 0  # a flat channel has no gradient
    inside = magnitude[0, 1, 1:-1]  # away from the zero padding of the top and bottom rows
    torch.testing.assert_close(inside[:, 2:4], torch.full((4, 2), 4.0))
    assert inside[:, :2].abs().sum() == 0


@pytest.mark.parametrize("size", [(17, 17), (31, 20)])
def test_edge_enhanced_dran_keeps_shapes_and_adds_its_branch(size):
    from medfuse.dran.network import EdgeDRAN

    torch.manual_seed(0)
    model = EdgeDRAN(width=8).eval()
    image = torch.rand(2, 1, *size)
    assert model.encode(image).shape == (2, 8, *size) and model(image).shape == image.shape
    with torch.no_grad():
        for parameter in model.encoder.edge.parameters():
            parameter.zero_()
    plain = DRAN(width=8).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if ".edge." not in k})
    torch.testing.assert_close(model.encode(image), plain.encode(image))  # a zero branch adds nothing
