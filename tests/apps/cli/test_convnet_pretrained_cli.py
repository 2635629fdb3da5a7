"""``kernelkit convnet predict / validate / deploy / train --pretrained`` without a network: an offline Hugging
Face cache in the Hub's layout holds an official-format UniRepLKNet-A checkpoint with random weights."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file
from typer.testing import CliRunner

from kernelkit.apps.cli.convnet import app
from kernelkit.models import create_model
from kernelkit.models.preprocess import eval_transform, read_image
from kernelkit.models.pretrained import imagenet_class_names, imagenet_synsets
from tests.hub_cache import write_hub_file

FILE = "unireplknet_a_in1k_224_acc77.03.pth"
TAG = "unireplknet_a.in1k"


def _random_weights(seed: int = 0) -> dict[str, torch.Tensor]:
    """unireplknet_a weights moved away from the initialisation, with a head whose logits spread out (so the
    top probabilities are distinct numbers)."""
    torch.manual_seed(seed)
    model = create_model("unireplknet_a").eval()
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    for key, t in sd.items():
        if t.is_floating_point():
            t.add_(torch.rand_like(t) * 0.1 if "running_var" in key else torch.randn_like(t) * 0.05)
    sd["head.weight"] *= 40
    return sd


def _official_bytes(sd: dict[str, torch.Tensor]) -> bytes:
    buf = io.BytesIO()
    torch.save({"model": sd, "args": argparse.Namespace(model="unireplknet_a", lr=4e-3), "epoch": 299}, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    return _random_weights()


@pytest.fixture(scope="module")
def cache(tmp_path_factory, weights) -> Path:
    root = tmp_path_factory.mktemp("hub")
    write_hub_file(root, "DingXiaoH/UniRepLKNet", FILE, _official_bytes(weights))
    return root


@pytest.fixture
def hub(cache, monkeypatch) -> Path:
    """Point huggingface_hub at the cache, offline (env and the constants it read at import)."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


@pytest.fixture(scope="module")
def reference(weights) -> torch.nn.Module:
    """The training-form model with the weights loaded by hand."""
    model = create_model("unireplknet_a").eval()
    model.load_state_dict(weights)
    return model


def _image(path: Path, seed: int, size: tuple[int, int] = (150, 130)) -> Path:
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (12, 10, 3)).astype(np.uint8))
    small.resize(size, Image.Resampling.BILINEAR).save(path)
    return path


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def _one_error_line(res, *words: str) -> None:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.output
    for word in words:
        assert word in lines[0], lines[0]


def _hand_probs(reference: torch.nn.Module, image: Path) -> torch.Tensor:
    cfg = create_model(TAG).pretrained_cfg
    with torch.no_grad():
        return reference(eval_transform(cfg)(read_image(image))[None]).softmax(-1)[0]


# ---- predict ------------------------------------------------------------------------------------------------


def test_predict_prints_the_top5_softmax_with_class_names(hub, reference, tmp_path) -> None:
    img = _image(tmp_path / "cat.png", seed=1)
    res = _invoke("predict", str(img), "--model", TAG)
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0] == str(img) and len(lines) == 6
    probs = _hand_probs(reference, img)
    want_p, want_i = probs.topk(5)
    names = imagenet_class_names()
    for line, p, i in zip(lines[1:], want_p, want_i, strict=True):
        prob, rest = line.split(maxsplit=1)
        assert float(prob) == pytest.approx(float(p), abs=1e-4)
        assert rest == f"{names[int(i)]} ({int(i)})"
    assert float(want_p[0]) > 0.05  # the check compares real, distinct numbers

    res = _invoke("predict", str(img), str(img), "--model", TAG, "--top", "3", "--json")
    got = json.loads(res.stdout)
    assert got["form"] == "deploy" and len(got["images"]) == 2
    for item in got["images"]:
        assert [e["index"] for e in item["top"]] == want_i[:3].tolist()
        assert [e["prob"] for e in item["top"]] == pytest.approx(want_p[:3].tolist(), abs=1e-5)


def test_predict_errors_are_one_line_with_their_exit_codes(hub, tmp_path) -> None:
    img = _image(tmp_path / "ok.png", seed=2)
    res = _invoke("predict", str(tmp_path / "missing.jpg"), "--model", TAG)
    assert res.exit_code == 1
    _one_error_line(res, "missing.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    res = _invoke("predict", str(img), str(tmp_path / "broken.jpg"), "--model", TAG)
    assert res.exit_code == 1
    _one_error_line(res, "broken.jpg", "cannot decode")
    res = _invoke("predict", str(img), "--model", "unireplknet_a.in99k")
    assert res.exit_code == 2
    _one_error_line(res, "--model")
    res = _invoke("predict", str(img), "--model", "mixnet_s.ft_in1k")  # not in the offline cache
    assert res.exit_code == 1
    _one_error_line(res, "mixnet_s.ft_in1k", "HF_HUB_OFFLINE")
    res = _invoke("predict", str(img), "--model", "unireplknet_a", "--checkpoint", str(tmp_path / "none.pth"))
    assert res.exit_code == 2
    _one_error_line(res, "--checkpoint")


# ---- validate -----------------------------------------------------------------------------------------------


def _folder(root: Path, classes: list[str], per_class: int = 3) -> Path:
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            _image(root / name / f"img{i}.png", seed=100 * c + i, size=(120 + 7 * i, 100))
    return root


def test_validate_top1_equals_a_hand_count(hub, reference, tmp_path) -> None:
    """Six images filed under ImageNet synset folders: four under the class the model (by hand) ranks first, two
    under a class it ranks low; the command's counts equal the hand count."""
    synsets = imagenet_synsets()
    data = tmp_path / "val"
    hits1 = hits5 = 0
    for i in range(6):
        staged = _image(tmp_path / f"staged{i}.png", seed=i, size=(120 + 7 * i, 100))
        probs = _hand_probs(reference, staged)
        label = int(probs.argmax()) if i < 4 else int(probs.argmin())
        (data / synsets[label]).mkdir(parents=True, exist_ok=True)
        staged.rename(data / synsets[label] / f"img{i}.png")
        hits1 += int(probs.argmax()) == label
        hits5 += label in probs.topk(5).indices.tolist()
    assert (hits1, hits5) == (4, 4)
    res = _invoke("validate", "--model", TAG, "--data", str(data), "--out", str(tmp_path / "run"), "--quiet",
                  "--json", "--batch-size", "4")
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)["sections"]["validate"]
    assert (got["correct_top1"], got["correct_top5"], got["images"]) == (hits1, hits5, 6)
    assert got["top1"] == pytest.approx(100 * hits1 / 6)
    assert got["class_index"] == "ImageNet synset folder names"
    assert got["published_top1"] == 77.03 and got["form"] == "deploy"
    report = (tmp_path / "run" / "report.html").read_text()
    assert "77.03" in report and "6 images of val vs the 50,000 ImageNet-val images" in report


def test_validate_a_fine_tuned_checkpoint_maps_sorted_folders(weights, tmp_path) -> None:
    """A 3-class checkpoint: its classifier size comes from the file, folders map in sorted order."""
    sd = {k: v for k, v in weights.items() if not k.startswith("head.")}
    torch.manual_seed(3)
    sd["head.weight"], sd["head.bias"] = torch.randn(3, 320) * 2, torch.zeros(3)
    ckpt = tmp_path / "finetuned.pth"
    ckpt.write_bytes(_official_bytes(sd))
    data = _folder(tmp_path / "val", ["ant", "bee", "cat"], per_class=2)
    model = create_model("unireplknet_a", num_classes=3).eval()
    model.load_state_dict(sd)
    tf = eval_transform(model.pretrained_cfg)
    hits = 0
    for label, name in enumerate(["ant", "bee", "cat"]):
        for f in sorted((data / name).iterdir()):
            with torch.no_grad():
                hits += int(model(tf(read_image(f))[None]).argmax()) == label
    res = _invoke("validate", "--model", "unireplknet_a", "--checkpoint", str(ckpt), "--data", str(data),
                  "--out", str(tmp_path / "run"), "--quiet", "--json", "--no-deploy")
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)["sections"]["validate"]
    assert got["class_index"] == "sorted folder order (one folder per class)"
    assert (got["correct_top1"], got["correct_top5"], got["images"]) == (hits, 6, 6)  # top-5 of 3 classes: all
    assert got["form"] == "training" and got["published_top1"] is None


def test_validate_refuses_folders_it_cannot_map(hub, tmp_path) -> None:
    data = _folder(tmp_path / "val", ["cats", "dogs", "owls"], per_class=1)
    res = _invoke("validate", "--model", TAG, "--data", str(data), "--out", str(tmp_path / "run"), "--quiet")
    assert res.exit_code == 2
    _one_error_line(res, "--data", "3 class folders")
    res = _invoke("validate", "--model", TAG, "--data", str(tmp_path / "nowhere"), "--quiet")
    assert res.exit_code == 2
    _one_error_line(res, "--data")


# ---- deploy -------------------------------------------------------------------------------------------------


def test_deploy_writes_weights_that_reproduce_the_training_model(weights, reference, tmp_path) -> None:
    ckpt = tmp_path / FILE
    ckpt.write_bytes(_official_bytes(weights))
    out = tmp_path / "a-deploy.safetensors"
    res = _invoke("deploy", str(ckpt), "--model", "unireplknet_a", "--out", str(out))
    assert res.exit_code == 0, res.output
    deployed = create_model("unireplknet_a", deploy=True).eval()
    deployed.load_state_dict(load_file(out))
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        want, got = reference(x), deployed(x)
    assert ((got - want).abs().max() / want.abs().max()).item() <= 1e-4
    n_train = sum(p.numel() for p in reference.parameters())
    n_deploy = sum(p.numel() for p in deployed.parameters())
    assert n_deploy < n_train
    assert f"parameters: training form {n_train:,} -> deploy form {n_deploy:,}" in res.stdout
    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
    assert meta["source_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert meta["model"] == "unireplknet_a" and meta["source_file"] == FILE
    assert not list(tmp_path.glob(".*.tmp"))


def test_deploy_refuses_to_write_when_the_forms_differ(weights, tmp_path, monkeypatch) -> None:
    import kernelkit.models as models

    real = models.reparameterize

    def broken(model):
        real(model)
        with torch.no_grad():
            next(model.parameters()).mul_(1.5)
        return model

    monkeypatch.setattr(models, "reparameterize", broken)
    ckpt = tmp_path / FILE
    ckpt.write_bytes(_official_bytes(weights))
    out = tmp_path / "a.safetensors"
    res = _invoke("deploy", str(ckpt), "--model", "unireplknet_a", "--out", str(out))
    assert res.exit_code == 1
    _one_error_line(res, FILE, "nothing written")
    assert not out.exists()


def test_deploy_errors(weights, tmp_path) -> None:
    ckpt = tmp_path / FILE
    ckpt.write_bytes(_official_bytes(weights))
    res = _invoke("deploy", str(ckpt), "--model", "unireplknet_f", "--out", str(tmp_path / "f.safetensors"))
    assert res.exit_code == 1  # another architecture's checkpoint
    _one_error_line(res, FILE)
    (tmp_path / "bad.pth").write_bytes(b"garbage")
    res = _invoke("deploy", str(tmp_path / "bad.pth"), "--model", "unireplknet_a", "--out",
                  str(tmp_path / "b.safetensors"))
    assert res.exit_code == 1
    _one_error_line(res, "bad.pth")
    res = _invoke("deploy", str(tmp_path / "none.pth"), "--model", "unireplknet_a", "--out",
                  str(tmp_path / "c.safetensors"))
    assert res.exit_code == 2
    _one_error_line(res, "none.pth")
    res = _invoke("deploy", str(ckpt), "--model", "unireplknet_a", "--out", str(tmp_path / "c.bin"))
    assert res.exit_code == 2
    _one_error_line(res, "--out")
    res = _invoke("deploy", str(ckpt), "--model", "unireplknet_zz", "--out", str(tmp_path / "c.safetensors"))
    assert res.exit_code == 2
    _one_error_line(res, "--model")
    assert not list(tmp_path.glob("*.safetensors"))


# ---- train --pretrained -------------------------------------------------------------------------------------


def test_train_starts_from_the_pretrained_backbone_with_layer_decay(hub, weights, tmp_path, monkeypatch) -> None:
    from kernelkit.train import Trainer

    seen: dict = {}
    real_fit = Trainer.fit

    def fit(self):
        seen["state"] = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        seen["scales"] = sorted({g["lr_scale"] for g in self.optimizer.param_groups})
        seen["lrs"] = [(g["lr"], g["lr_scale"]) for g in self.optimizer.param_groups]
        return real_fit(self)

    monkeypatch.setattr(Trainer, "fit", fit)
    res = _invoke("train", "--pretrained", TAG, "--layer-decay", "0.8", "--data", "torus", "--limit", "12",
                  "--max-steps", "1", "--batch-size", "4", "--image-size", "32", "--lr", "1e-3",
                  "--out", str(tmp_path / "run"), "--quiet")
    assert res.exit_code == 0, res.output
    state = seen["state"]
    stem = "downsample_layers.0.0.weight"
    for key, value in weights.items():
        if key.startswith("head."):
            assert state[key].shape[0] == 2  # re-initialised for the task's two classes
        elif key == stem:  # one input channel: the RGB filters summed
            torch.testing.assert_close(state[key], value.sum(1, keepdim=True))
        else:
            assert torch.equal(state[key], value), key
    used_ids = (0, 1, 2, 3, 4, 12, 13)  # depths (2, 2, 6, 2): stage 2 fills ids 3 and 4, stage 3 is 12
    assert seen["scales"] == pytest.approx(sorted(0.8 ** (13 - i) for i in used_ids))
    assert all(lr == pytest.approx(1e-3 * scale) for lr, scale in seen["lrs"])
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["pretrained"] == TAG and config["layer_decay"] == 0.8 and config["model"] == "unireplknet_a"


def test_train_pretrained_errors(hub, tmp_path) -> None:
    res = _invoke("train", "--pretrained", "unireplknet_a.in99k", "--data", "torus", "--out", str(tmp_path / "a"))
    assert res.exit_code == 2
    _one_error_line(res, "--pretrained")
    res = _invoke("train", "--pretrained", TAG, "--model", "mixnet_s", "--data", "torus", "--out",
                  str(tmp_path / "b"))
    assert res.exit_code == 2
    _one_error_line(res, "--model mixnet_s")
    res = _invoke("train", "--model", "resnet18", "--layer-decay", "0.8", "--data", "torus", "--limit", "12",
                  "--out", str(tmp_path / "c"))
    assert res.exit_code == 2
    _one_error_line(res, "--layer-decay")


def test_option_defaults_come_from_the_configs() -> None:
    import inspect

    from kernelkit.apps.cli import convnet
    from kernelkit.apps.configs.convnet import DeployConfig, PredictConfig, ValidateConfig

    for fn, cls, names in ((convnet.predict, PredictConfig, ("model", "top", "device", "threads")),
                           (convnet.validate, ValidateConfig, ("model", "batch_size", "limit", "device", "seed",
                                                               "threads")),
                           (convnet.deploy, DeployConfig, ("seed", "threads"))):
        params = inspect.signature(fn).parameters
        for name in names:
            assert params[name].default == getattr(cls(), name), (fn.__name__, name)


# ---- deploy-form files on --checkpoint ----------------------------------------------------------------------


def test_deploy_form_files_load_with_checkpoint_and_give_the_training_forms_predictions(weights, reference,
                                                                                        tmp_path) -> None:
    ckpt = tmp_path / FILE
    ckpt.write_bytes(_official_bytes(weights))
    deployed = tmp_path / "a-deploy.safetensors"
    assert _invoke("deploy", str(ckpt), "--model", "unireplknet_a", "--out", str(deployed)).exit_code == 0
    img = _image(tmp_path / "cat.png", seed=1)
    res = _invoke("predict", str(img), "--model", "unireplknet_a", "--checkpoint", str(deployed), "--json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)["images"][0]["top"]
    want_p, want_i = _hand_probs(reference, img).topk(5)
    assert [e["index"] for e in got] == want_i.tolist()
    assert [e["prob"] for e in got] == pytest.approx(want_p.tolist(), abs=1e-4)
    # the training form cannot come back from a deploy-form file, and it is not deployed twice
    res = _invoke("predict", str(img), "--model", "unireplknet_a", "--checkpoint", str(deployed), "--no-deploy")
    assert res.exit_code == 2
    _one_error_line(res, "--no-deploy", "deploy form")
    out = tmp_path / "again.safetensors"
    res = _invoke("deploy", str(deployed), "--model", "unireplknet_a", "--out", str(out))
    assert res.exit_code == 1
    _one_error_line(res, "already holds the deploy form")
    assert not out.exists()
