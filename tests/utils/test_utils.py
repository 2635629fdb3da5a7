import pytest
import torch
from torch import nn

from kernelkit.utils.checkpoint import CheckpointError, load_tensors, save_tensors
from kernelkit.utils.counting import count_macs, count_params
from kernelkit.utils.device import resolve_device, set_threads
from kernelkit.utils.seed import seed_everything


def test_count_params_counts_shared_once():
    lin = nn.Linear(4, 3)
    model = nn.Sequential(lin, nn.ReLU(), lin)
    assert count_params(model) == 4 * 3 + 3


def test_count_macs_matches_hand_count():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),             # 8*3*3*3 per output pixel, 16*16 pixels
        nn.Conv2d(8, 8, 5, padding=2, groups=8),   # depthwise: 8*5*5 per pixel
        nn.Flatten(),
        nn.Linear(8 * 16 * 16, 10),
    )
    expected = 16 * 16 * (8 * 3 * 3 * 3) + 16 * 16 * (8 * 5 * 5) + 8 * 16 * 16 * 10
    assert count_macs(model, (1, 3, 16, 16)) == expected
    total, per_module = count_macs(model, (2, 3, 16, 16), per_module=True)
    assert total == 2 * expected and per_module["Global"] == 2 * expected


def test_safetensors_round_trip_and_corrupt_files(tmp_path):
    state = {"w": torch.randn(3, 4), "b": torch.arange(5)}
    path = tmp_path / "m.safetensors"
    save_tensors(path, state)
    loaded = load_tensors(path)
    assert torch.equal(loaded["w"], state["w"]) and torch.equal(loaded["b"], state["b"])

    data = path.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="trunc.safetensors: not a readable safetensors file"):
        load_tensors(tmp_path / "trunc.safetensors")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_tensors(tmp_path / "empty.safetensors")
    with pytest.raises(CheckpointError, match="not found"):
        load_tensors(tmp_path / "missing.safetensors")


def test_torch_checkpoint_weights_only(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}}, good)
    assert torch.equal(load_tensors(good)["w"], torch.ones(2))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "evil.pt"
    torch.save({"w": Evil()}, bad)
    with pytest.raises(CheckpointError, match="pickled code"):
        load_tensors(bad)
    (tmp_path / "trunc.pt").write_bytes(good.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="trunc.pt"):
        load_tensors(tmp_path / "trunc.pt")


def test_seed_everything_is_reproducible():
    seed_everything(3)
    a = torch.randn(4)
    g = seed_everything(3)
    assert torch.equal(a, torch.randn(4))
    assert torch.equal(torch.randn(2, generator=g), torch.randn(2, generator=seed_everything(3)))


def test_device_and_threads_validation():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    with pytest.raises(ValueError, match="invalid device"):
        resolve_device("toaster")
    with pytest.raises(ValueError, match="threads"):
        set_threads(-1)


def test_data_root_precedence_and_source(tmp_path, monkeypatch):
    from kernelkit.data import root

    monkeypatch.setenv("KERNELKIT_DATA", str(tmp_path / "env"))
    root.set_data_root(None)
    assert root.data_root() == tmp_path / "env" and root.data_root_source() == "$KERNELKIT_DATA"
    assert root.data_root_source(tmp_path) == "the caller"
    (tmp_path / "cli").mkdir()
    root.set_data_root(tmp_path / "cli")
    try:
        assert root.data_root() == (tmp_path / "cli").resolve() and root.data_root_source() == "--data-dir"
        with pytest.raises(root.DataNotFoundError, match="mnist/x.gz not found .*chosen by --data-dir.*get it here"):
            root.require("mnist/x.gz", "get it here")
    finally:
        root.set_data_root(None)
    monkeypatch.delenv("KERNELKIT_DATA")
    assert root.data_root_source() == "default"


def test_switch_use_restores_the_previous_value_even_after_an_error():
    import threading

    from kernelkit.utils.switch import Switch

    sw = Switch(True)
    with sw.use(False):
        assert sw.enabled is False
        with sw.use(True):
            assert sw.enabled is True
        assert sw.enabled is False
        seen: list[bool] = []
        worker = threading.Thread(target=lambda: seen.append(sw.enabled))
        worker.start()
        worker.join()
        assert seen == [True]  # a block in one thread does not change the setting in another
    assert sw.enabled is True
    with pytest.raises(RuntimeError), sw.use(False):
        raise RuntimeError("boom")
    assert sw.enabled is True
    assert not hasattr(sw, "set")  # no process-wide setter


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_atomic_writes_get_the_mode_open_would_give(tmp_path, umask):
    import os
    import stat

    from kernelkit.utils.io import write_bytes, write_json, write_text

    old = os.umask(umask)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        write_text(tmp_path / "b.txt", "hi")
        write_bytes(tmp_path / "c.bin", b"\0")
        save_tensors(tmp_path / "d.safetensors", {"w": torch.ones(2)})
        with open(tmp_path / "plain", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == expected
    for name in ("a.json", "b.txt", "c.bin", "d.safetensors"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == expected, name
