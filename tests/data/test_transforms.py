"""Tensor transforms: shapes, seeded determinism, per-sample randomness, and exact content checks."""

import numpy as np
import pytest
import torch
from PIL import Image

from kernelkit.data.stats import CIFAR10_MEAN, CIFAR10_STD, DATASET_STATS
from kernelkit.data.transforms import (
    BatchTransform,
    CenterCrop,
    ColorJitter,
    Compose,
    Cutout,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    ToFloat,
    pad,
)


def images(n=6, c=3, h=32, w=32, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


RANDOM_TRANSFORMS = [
    lambda g: RandomCrop(32, padding=4, generator=g),
    lambda g: RandomCrop(28, generator=g),
    lambda g: RandomHorizontalFlip(generator=g),
    lambda g: RandomResizedCrop(24, generator=g),
    lambda g: ColorJitter(0.4, 0.4, 0.4, generator=g),
    lambda g: Cutout(8, generator=g),
]


@pytest.mark.parametrize("make", RANDOM_TRANSFORMS)
def test_random_transforms_are_deterministic_for_a_seeded_generator(make):
    x = images()
    a, b = make(gen(5))(x), make(gen(5))(x)
    assert torch.equal(a, b)
    assert not torch.equal(make(gen(5))(x), make(gen(6))(x))


@pytest.mark.parametrize("make", RANDOM_TRANSFORMS)
def test_single_image_equals_batch_of_one(make):
    x = images(1)
    single = make(gen(3))(x[0])
    batch = make(gen(3))(x)
    assert single.dim() == 3 and batch.dim() == 4
    assert torch.equal(single, batch[0])


def test_global_rng_is_used_without_generator():
    x = images()
    torch.manual_seed(11)
    a = RandomCrop(32, padding=4)(x)
    torch.manual_seed(11)
    b = RandomCrop(32, padding=4)(x)
    assert torch.equal(a, b)


def test_random_crop_with_padding_is_a_window_of_the_padded_image_per_sample():
    x = images(8)
    out = RandomCrop(32, padding=4, generator=gen(0))(x)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    offsets = []
    for i in range(len(x)):  # brute force: find the window that matches exactly
        hits = [(t, l) for t in range(9) for l in range(9) if torch.equal(padded[i, :, t:t + 32, l:l + 32], out[i])]
        assert len(hits) == 1
        offsets.append(hits[0])
    assert len(set(offsets)) > 1  # samples of a batch get their own offsets


def test_random_crop_offsets_cover_all_positions():
    x = torch.arange(10 * 10, dtype=torch.float32).view(1, 1, 10, 10).expand(2000, 1, 10, 10)
    out = RandomCrop(8, generator=gen(1))(x)
    tops, lefts = (out[:, 0, 0, 0] // 10).long(), (out[:, 0, 0, 0] % 10).long()
    assert set(tops.tolist()) == {0, 1, 2} and set(lefts.tolist()) == {0, 1, 2}
    counts = torch.bincount(tops * 3 + lefts, minlength=9).float()
    assert counts.min() > 2000 / 9 * 0.7  # roughly uniform


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_modes_match_torch_pad_and_keep_uint8(mode):
    x = (images(2) * 255).to(torch.uint8)
    out = pad(x, (2, 1, 3, 4), mode)
    ref = torch.nn.functional.pad(x.float(), (2, 3, 1, 4), mode=mode).to(torch.uint8)
    assert out.dtype == torch.uint8 and torch.equal(out, ref)


def test_random_crop_pad_if_needed_and_too_large():
    x = images(2, h=20, w=20)
    assert RandomCrop(24, pad_if_needed=True, generator=gen(0))(x).shape == (2, 3, 24, 24)
    with pytest.raises(ValueError, match="larger than"):
        RandomCrop(24)(x)
    with pytest.raises(ValueError, match="padding_mode"):
        RandomCrop(24, padding_mode="mirror")


def test_flip_is_an_involution_and_mirrors():
    x = images()
    flip = RandomHorizontalFlip(p=1.0)
    assert torch.equal(flip(x), x.flip(-1))
    assert torch.equal(flip(flip(x)), x)
    assert torch.equal(RandomHorizontalFlip(p=0.0)(x), x)


def test_flip_probability_per_sample():
    x = torch.arange(2, dtype=torch.float32).view(1, 1, 1, 2).expand(4000, 1, 1, 2)
    out = RandomHorizontalFlip(p=0.5, generator=gen(2))(x)
    frac = (out[:, 0, 0, 0] == 1).float().mean().item()
    assert 0.45 < frac < 0.55


def test_normalize_matches_formula_and_inverse_restores():
    x = images()
    norm = Normalize(CIFAR10_MEAN, CIFAR10_STD)
    y = norm(x)
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(y, (x - mean) / std)
    torch.testing.assert_close(norm.inverse()(y), x, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(norm(x[0]), y[0])
    with pytest.raises(ValueError, match="channel"):
        norm(images(c=1))
    with pytest.raises(TypeError, match="ToFloat"):
        norm((x * 255).to(torch.uint8))


def test_to_float_scales_uint8():
    x = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 1, 3)
    torch.testing.assert_close(ToFloat()(x), torch.tensor([0.0, 128 / 255, 1.0]).view(1, 1, 3))


def test_resize_matches_pillow_bilinear_antialias_downsampling():
    rng = np.random.default_rng(0)
    arr = rng.random((40, 56), dtype=np.float32)
    ours = Resize((20, 21))(torch.from_numpy(arr)[None])[0].numpy()
    ref = np.asarray(Image.fromarray(arr, mode="F").resize((21, 20), Image.Resampling.BILINEAR))
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_resize_shapes_and_uint8():
    x = images(2, h=30, w=60)
    assert Resize(15)(x).shape == (2, 3, 15, 30)  # int: shorter side, aspect kept
    assert Resize((7, 9))(x[0]).shape == (3, 7, 9)
    u = (x * 255).to(torch.uint8)
    out = Resize((15, 30))(u)
    assert out.dtype == torch.uint8
    assert (out.float() - Resize((15, 30))(u.float())).abs().max() <= 0.5 + 1e-4


def test_center_crop_takes_the_middle():
    x = torch.arange(7 * 8, dtype=torch.float32).view(1, 7, 8)
    torch.testing.assert_close(CenterCrop((3, 4))(x), x[:, 2:5, 2:6])
    big = CenterCrop(10)(x)  # padded with zeros when the image is smaller
    assert big.shape == (1, 10, 10)
    assert big.sum() == x.sum()


def test_random_resized_crop_full_box_is_plain_resize():
    x = images(3, h=24, w=24)
    rrc = RandomResizedCrop(12, scale=(1.0, 1.0), ratio=(1.0, 1.0), generator=gen(0))
    torch.testing.assert_close(rrc(x), Resize((12, 12))(x))
    out = RandomResizedCrop((16, 20), generator=gen(0))(images(4, h=40, w=30))
    assert out.shape == (4, 3, 16, 20)


def test_color_jitter_brightness_scales_each_sample_by_one_factor():
    x = images() * 0.6  # no clipping at factor <= 1.5
    out = ColorJitter(brightness=0.5, generator=gen(0))(x)
    ratio = out / x
    per_sample = ratio.flatten(1)
    torch.testing.assert_close(per_sample.min(1).values, per_sample.max(1).values)
    assert ((per_sample[:, 0] >= 0.5) & (per_sample[:, 0] <= 1.5)).all()
    assert per_sample[:, 0].unique().numel() == len(x)


def test_color_jitter_saturation_leaves_grey_images_and_contrast_keeps_grey_mean():
    grey = images(4, c=1).expand(4, 3, 32, 32).contiguous()
    torch.testing.assert_close(ColorJitter(saturation=0.9, generator=gen(0))(grey), grey)
    x = 0.25 + 0.5 * images()
    out = ColorJitter(contrast=0.3, generator=gen(0))(x)  # factor <= 1.3 keeps values in [0, 1]
    lum = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    torch.testing.assert_close((out * lum).sum(1).mean((1, 2)), (x * lum).sum(1).mean((1, 2)), atol=1e-5, rtol=0)


def test_cutout_zeroes_one_clipped_square():
    x = torch.ones(50, 1, 16, 16)
    out = Cutout(6, generator=gen(0))(x)
    zeros = (out == 0).sum((1, 2, 3))
    assert (zeros > 0).all() and (zeros <= 36).all()
    assert (zeros < 36).any()  # some squares are clipped at a border


def test_compose_applies_in_order():
    x = images()
    norm = Normalize((0.5,) * 3, (0.25,) * 3)
    tf = Compose([RandomHorizontalFlip(p=1.0), norm])
    torch.testing.assert_close(tf(x), norm(x.flip(-1)))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="C×H×W"):
        RandomHorizontalFlip()(torch.zeros(4, 4))
    with pytest.raises(ValueError, match="positive"):
        Normalize((0.5,), (0.0,))


def test_known_statistics_constants():
    assert set(DATASET_STATS) == {"mnist", "cifar10", "cifar100", "imagenet"}
    for mean, std in DATASET_STATS.values():
        assert len(mean) == len(std) and all(0 < s < 0.5 for s in std)


def test_batch_transform_adapter_keeps_labels():
    x, y = images(), torch.arange(6)
    bx, by = BatchTransform(RandomHorizontalFlip(p=1.0))(x, y)
    assert torch.equal(bx, x.flip(-1)) and by is y
