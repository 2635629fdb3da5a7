"""Modality-to-map conversions: shapes, independent references, and a forward through UniRepLKNet."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kernelkit.models import create_model
from kernelkit.models.modalities import (
    TimeSeriesToMap,
    audio_to_map,
    embedding_to_map,
    log_mel_fbank,
    mel_filterbank,
    point_cloud_to_views,
    video_to_map,
)


def _reference_filterbank(n_fft: int, n_mels: int, sr: int, f_min: float, f_max: float) -> np.ndarray:
    """Written out per filter and per bin from the definition (scalar loops, math module only)."""
    def mel(f: float) -> float:
        return 1127.0 * math.log(1.0 + f / 700.0)

    lo, hi = mel(f_min), mel(f_max)
    pts = [lo + (hi - lo) * i / (n_mels + 1) for i in range(n_mels + 2)]
    fb = np.zeros((n_mels, n_fft // 2 + 1))
    for m in range(n_mels):
        a, c, b = pts[m], pts[m + 1], pts[m + 2]
        for k in range(n_fft // 2 + 1):
            x = mel(k * sr / n_fft)
            if a < x <= c:
                fb[m, k] = (x - a) / (c - a)
            elif c < x < b:
                fb[m, k] = (b - x) / (b - c)
    return fb


def test_mel_filterbank_matches_definition() -> None:
    fb = mel_filterbank(512, 128, 16000, 20.0)
    ref = _reference_filterbank(512, 128, 16000, 20.0, 8000.0)
    np.testing.assert_allclose(fb.numpy(), ref, atol=1e-6)
    assert fb.shape == (128, 257)


def test_log_mel_pure_tone_peaks_at_its_mel_band() -> None:
    sr, f0 = 16000, 1000.0
    t = torch.arange(sr) / sr
    fb = log_mel_fbank(torch.sin(2 * math.pi * f0 * t)[None], sr, 128)
    assert fb.shape == (1, 98, 128)  # 1 s: 1 + (16000 - 400) // 160 frames
    centres = torch.linspace(1127 * math.log1p(20 / 700), 1127 * math.log1p(8000 / 700), 130)[1:-1]
    expected = int((centres - 1127 * math.log1p(f0 / 700)).abs().argmin())
    assert abs(int(fb[0].mean(0).argmax()) - expected) <= 1


def test_audio_map_layouts_and_forward() -> None:
    wav = torch.randn(2, 16000)
    code = audio_to_map(wav)
    paper = audio_to_map(wav, layout="paper")
    assert code.shape == (2, 1, 128, 128) and paper.shape == (2, 1, 128, 128)
    torch.testing.assert_close(code, paper.transpose(2, 3))
    assert torch.all(code[..., 98:] == 0)  # 98 real frames, zero-padded to 128
    model = create_model("unireplknet_a", in_chans=1, num_classes=35).eval()
    with torch.no_grad():
        assert model(code).shape == (2, 35)
    with pytest.raises(ValueError, match="shorter"):
        log_mel_fbank(torch.randn(1, 100))


def test_time_series_map_and_forward() -> None:
    tokens = torch.randn(3, 48, 768)
    m = embedding_to_map(tokens)
    assert m.shape == (3, 1, 192, 192)
    torch.testing.assert_close(m.flatten(1), tokens.flatten(1))
    emb = TimeSeriesToMap(n_vars=5, d_model=48)  # L=48, D'=48 -> 48x48
    x = torch.randn(2, 48, 5)
    img = emb(x)
    assert img.shape == (2, 1, 48, 48)
    model = create_model("unireplknet_a", in_chans=1, num_classes=0).eval()
    with torch.no_grad():
        assert model(img).shape == (2, model.num_features)
    with pytest.raises(ValueError, match="variables"):
        emb(torch.randn(2, 48, 4))
    with pytest.raises(ValueError, match="perfect square"):
        embedding_to_map(torch.randn(1, 10, 7))


def test_point_cloud_views() -> None:
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(2, 512, 3, generator=g)
    views = point_cloud_to_views(pts, views=4, size=64)
    assert views.shape == (2, 4, 3, 64, 64)
    assert views.min() >= 0 and views.max() <= 1
    # a single point on the +z axis, seen from view 0, lands in the centre column with full nearness
    one = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]]])
    v = point_cloud_to_views(one, views=2, size=33)
    assert v[0, 0, 0, 16, 16] == 1.0 and v[0, 0, 1, 16, 16] == 1.0
    # rotating the cloud by one view step permutes the views
    rot = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # 90° about y
    a = point_cloud_to_views(pts @ rot.T, views=4, size=64)
    assert torch.allclose(a[:, 0], views[:, 1], atol=1e-6) or torch.allclose(a[:, 1], views[:, 0], atol=1e-6)
    model = create_model("unireplknet_a", in_chans=3, num_classes=40).eval()
    with torch.no_grad():
        logits = model(views.flatten(0, 1)).view(2, 4, 40).mean(1)  # average over views
    assert logits.shape == (2, 40)


def test_video_grid_vs_official_reshape() -> None:
    b, c, t, h, w = 1, 3, 16, 8, 12
    video = torch.arange(b * c * t * h * w, dtype=torch.float32).reshape(b, c, t, h, w)
    grid = video_to_map(video, "grid")
    raw = video_to_map(video, "reshape")
    assert grid.shape == raw.shape == (1, 3, 32, 48)
    for i in range(4):
        for j in range(4):
            torch.testing.assert_close(grid[0, :, i * h:(i + 1) * h, j * w:(j + 1) * w], video[0, :, 4 * i + j])
    torch.testing.assert_close(raw, video.reshape(1, 3, 32, 48))
    # official reshape: frame 0 fills the first h/4 rows, 4 source rows side by side
    torch.testing.assert_close(raw[0, :, 0, :w], video[0, :, 0, 0])
    torch.testing.assert_close(raw[0, :, 0, w:2 * w], video[0, :, 0, 1])
    assert not torch.equal(grid, raw)
    model = create_model("unireplknet_a", num_classes=400).eval()
    with torch.no_grad():
        assert model(grid).shape == (1, 400)
    with pytest.raises(ValueError, match="perfect square"):
        video_to_map(torch.zeros(1, 3, 5, 8, 8))


def test_modality_maps_dispatch_and_channels() -> None:
    from kernelkit.models.modalities import MODALITY_CHANNELS, modality_maps

    torch.manual_seed(0)
    cases = {"audio": torch.randn(2, 16000), "timeseries": torch.randn(2, 48, 7),
             "pointcloud": torch.randn(2, 100, 3), "video": torch.randn(2, 3, 16, 8, 8)}
    for kind, raw in cases.items():
        maps, per_sample = modality_maps(kind, raw, d_model=48, size=32)
        assert maps.shape[1] == MODALITY_CHANNELS[kind] and maps.shape[0] == 2 * per_sample
    assert modality_maps("pointcloud", cases["pointcloud"], views=3, size=32)[0].shape == (6, 3, 32, 32)
    with pytest.raises(ValueError, match="unknown modality"):
        modality_maps("smell", torch.zeros(1))
