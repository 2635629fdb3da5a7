"""``kernelkit.models.preprocess``: the eval transform against PIL (resize, crop) and closed-form normalisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from kernelkit.data.dataset import DataFormatError
from kernelkit.models.preprocess import eval_transform, read_image

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# PIL resizes in two passes and rounds to uint8 between them; torch rounds once, so a pixel may differ by a few
# 0-255 levels. Accepted: at most 3 levels anywhere, 0.3 on average, more than 1 on at most 0.1% of the values.
MAX_LEVELS, MEAN_LEVELS, OVER_ONE_LEVEL = 3.0, 0.3, 1e-3


def _cfg(size: int = 224, crop_pct: float = 0.875, crop_mode: str = "center", interpolation: str = "bicubic") -> dict:
    return {"input_size": (3, size, size), "mean": MEAN, "std": STD, "crop_pct": crop_pct, "crop_mode": crop_mode,
            "interpolation": interpolation}


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth image with noise on top: the content a resize meets in photographs."""
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 256, (h // 8, w // 8, 3)).astype(np.uint8))
    img = np.asarray(base.resize((w, h), Image.Resampling.BILINEAR)).astype(np.int32)
    return (img + rng.integers(-20, 21, img.shape)).clip(0, 255).astype(np.uint8)


def _pil_reference(img: np.ndarray, cfg: dict) -> np.ndarray:
    """timm's eval pipeline written with PIL: shorter side to floor(size / crop_pct) and centre crop, or a
    square resize ("squash"); returns uint8 H x W x C."""
    pil = Image.fromarray(img)
    size = cfg["input_size"][1]
    if cfg["crop_mode"] == "squash":
        return np.asarray(pil.resize((size, size), Image.Resampling.BICUBIC))
    s = math.floor(size / cfg["crop_pct"])
    w, h = pil.size
    nw, nh = (int(s * w / h), s) if h <= w else (s, int(s * h / w))
    r = np.asarray(pil.resize((nw, nh), Image.Resampling.BICUBIC))
    top, left = int(round((nh - size) / 2)), int(round((nw - size) / 2))
    return r[top:top + size, left:left + size]


def _levels(out: torch.Tensor) -> np.ndarray:
    """Undo the normalisation in closed form: back to 0-255 levels, H x W x C."""
    x = out * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)
    return (x * 255).permute(1, 2, 0).numpy()


@pytest.mark.parametrize(("shape", "cfg"), [
    ((260, 300), _cfg()),                                   # landscape, shorter side 260 -> 256, crop 224
    ((333, 241), _cfg()),                                   # portrait
    ((300, 260), _cfg(size=96, crop_pct=0.9)),              # another size and crop_pct
    ((300, 260), _cfg(size=160, crop_pct=1.0, crop_mode="squash")),
])
def test_eval_transform_equals_pil_resize_crop_normalise(shape: tuple[int, int], cfg: dict) -> None:
    img = _photo(*shape)
    out = eval_transform(cfg)(torch.from_numpy(img).permute(2, 0, 1))
    size = cfg["input_size"][1]
    assert out.shape == (3, size, size) and out.dtype == torch.float32
    diff = np.abs(_levels(out) - _pil_reference(img, cfg).astype(np.float64))
    assert diff.max() <= MAX_LEVELS + 1e-3
    assert diff.mean() <= MEAN_LEVELS
    assert (diff > 1 + 1e-3).mean() <= OVER_ONE_LEVEL


def test_crop_pct_decides_the_field_of_view() -> None:
    """The comparison above can fail: the crop of another crop_pct is far from the PIL reference."""
    img = _photo(260, 300)
    out = eval_transform(_cfg(crop_pct=1.0))(torch.from_numpy(img).permute(2, 0, 1))
    diff = np.abs(_levels(out) - _pil_reference(img, _cfg()).astype(np.float64))
    assert diff.mean() > 5 * MEAN_LEVELS


def test_normalisation_is_closed_form() -> None:
    """An image already at the size: only (x / 255 - mean) / std, exactly."""
    img = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    out = eval_transform(_cfg(size=32, crop_pct=1.0))(img)
    want = (img.double() / 255 - torch.tensor(MEAN, dtype=torch.float64).view(3, 1, 1)) / torch.tensor(
        STD, dtype=torch.float64).view(3, 1, 1)
    torch.testing.assert_close(out.double(), want, atol=1e-6, rtol=0)


def test_batch_equals_each_image_and_float_input_is_taken_in_unit_range() -> None:
    tf = eval_transform(_cfg(size=64))
    imgs = torch.from_numpy(np.stack([_photo(90, 120, seed=s) for s in range(3)])).permute(0, 3, 1, 2)
    batch = tf(imgs)
    assert batch.shape == (3, 3, 64, 64)
    for i in range(3):
        torch.testing.assert_close(batch[i], tf(imgs[i]))
    as_float = tf(imgs.float() / 255)  # no rounding to uint8 after resizing: within one level
    assert (as_float - batch).abs().max().item() * min(STD) * 255 <= 1.0 + 1e-4


def test_bilinear_follows_pil_too() -> None:
    img = _photo(260, 300)
    cfg = _cfg(interpolation="bilinear")
    out = eval_transform(cfg)(torch.from_numpy(img).permute(2, 0, 1))
    pil = Image.fromarray(img).resize((295, 256), Image.Resampling.BILINEAR)
    ref = np.asarray(pil)[16:240, 36:260].astype(np.float64)
    diff = np.abs(_levels(out) - ref)
    assert diff.max() <= MAX_LEVELS + 1e-3 and diff.mean() <= MEAN_LEVELS


@pytest.mark.parametrize(("key", "value"), [("crop_mode", "letterbox"), ("interpolation", "lanczos"),
                                            ("crop_pct", 0.0)])
def test_unknown_settings_are_refused(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=key):
        eval_transform({**_cfg(), key: value})


def test_read_image_decodes_a_file_and_names_a_bad_one(tmp_path) -> None:
    img = _photo(40, 50)
    Image.fromarray(img).save(tmp_path / "a.png")
    got = read_image(tmp_path / "a.png")
    assert got.dtype == torch.uint8 and got.shape == (3, 40, 50)
    assert torch.equal(got, torch.from_numpy(img).permute(2, 0, 1))
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(DataFormatError, match="bad.jpg"):
        read_image(tmp_path / "bad.jpg")
    with pytest.raises(DataFormatError, match="missing.png"):
        read_image(tmp_path / "missing.png")
