"""TEEN's base-training augmentations: AutoAugment policies applied per image, Cutout, crops."""

import pytest
import torch

from kernelkit.fscil.training import AutoAugmentPerImage, base_augmentation


def test_cifar_recipe_keeps_shape_and_range_and_is_seeded():
    x = torch.rand(16, 3, 32, 32)
    aug = base_augmentation("cifar", 32)
    torch.manual_seed(0)
    a = aug(x)
    torch.manual_seed(0)
    b = aug(x)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)  # all randomness from torch's RNG: a resumed run augments identically
    assert not torch.equal(a, x)


def test_autoaugment_draws_a_sub_policy_per_image():
    # The same image repeated: a per-batch policy would give identical outputs whenever its ops are
    # deterministic; drawing per image gives many distinct results across 32 copies.
    torch.manual_seed(1)
    img = torch.rand(1, 3, 32, 32).expand(32, -1, -1, -1).contiguous()
    out = AutoAugmentPerImage("cifar10")(img)
    distinct = {tuple(o.flatten()[:64].tolist()) for o in out}
    assert len(distinct) > 8
    single = AutoAugmentPerImage("imagenet")(img[0])
    assert single.shape == (3, 32, 32)


def test_bad_policy_and_grayscale_are_clear_errors():
    with pytest.raises(ValueError, match="unknown AutoAugment policy"):
        AutoAugmentPerImage("svhn")
    with pytest.raises(ValueError, match="expects RGB"):
        AutoAugmentPerImage("cifar10")(torch.rand(2, 1, 28, 28))
