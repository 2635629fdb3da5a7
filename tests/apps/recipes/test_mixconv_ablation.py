"""The ablation network and the pieces of the kernel-mix ablation experiment (no full training here)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from kernelkit.apps.recipes.mixconv_ablation import (
    KERNEL_SETS,
    AblationConfig,
    flip_shift,
    kernel_name,
    load_ablation_data,
    summarize,
    trend_statement,
)
from kernelkit.layers.mixconv import use_impl
from kernelkit.models import create_model
from kernelkit.utils.counting import count_macs, count_params


def test_kernel_set_3_is_mobilenetv2() -> None:
    # MobileNetV2 1.0 has 3,504,872 parameters (Sandler et al.; torchvision's mobilenet_v2 reports the same)
    # and ~300M MACs at 224² (paper Table 4: 300M multiply-adds)
    m = create_model("mobilenetv2_mix", kernel_sizes=(3,))
    assert count_params(m) == 3_504_872
    with use_impl("split"):
        macs = count_macs(m, (1, 3, 224, 224))
    assert abs(macs - 300e6) / 300e6 < 0.01


def test_only_the_kernels_change_between_variants() -> None:
    counts = {}
    for ks in KERNEL_SETS:
        m = create_model("mobilenetv2_mix", kernel_sizes=ks, num_classes=10, width=0.25, depth=0.34)
        counts[ks] = count_params(m)
        depthwise = [mod for n, mod in m.named_modules() if n.endswith("conv_dw")]
        assert depthwise
        assert all((d.kernel_sizes if hasattr(d, "kernel_sizes") else (d.kernel_size[0],)) == ks for d in depthwise)
    base = create_model("mobilenetv2_mix", kernel_sizes=(3,), num_classes=10, width=0.25, depth=0.34)
    dw_channels = sum(mod.in_channels for n, mod in base.named_modules() if n.endswith("conv_dw"))
    for ks, n in counts.items():
        # the parameter difference is exactly the depthwise kernel area (equal split, remainder to group 0)
        m = create_model("mobilenetv2_mix", kernel_sizes=ks, num_classes=10, width=0.25, depth=0.34)
        area = sum(sum(c * k * k for c, k in zip(mod.in_splits, ks, strict=True)) if hasattr(mod, "in_splits")
                   else mod.in_channels * ks[0] ** 2 for nm, mod in m.named_modules() if nm.endswith("conv_dw"))
        assert n - counts[(3,)] == area - 9 * dw_channels
    assert counts[(3, 5, 7, 9)] < counts[(9,)] and counts[(3, 5, 7)] < counts[(7,)]


def test_headless_and_in_chans() -> None:
    m = create_model("mobilenetv2_mix", kernel_sizes=(3, 5), num_classes=0, in_chans=1, width=0.25,
                     small_input=True).eval()
    with torch.no_grad():
        assert m(torch.randn(2, 1, 16, 16)).shape == (2, m.num_features)
    with pytest.raises(ValueError, match="odd"):
        create_model("mobilenetv2_mix", kernel_sizes=(4,))


def test_fallback_data_and_augmentation(tmp_path) -> None:
    cfg = AblationConfig(dataset="cifar10_jpg", image_size=16, train_per_class=5)
    train, val, source, chans = load_ablation_data(cfg, tmp_path)  # empty root → embedded digits
    assert "EMBEDDED FALLBACK" in source and chans == 1
    x, y = train[0]
    assert x.shape == (1, 16, 16) and isinstance(y, int) and len(train) == 50
    assert abs(float(train.x.mean())) < 1e-4  # normalised with train statistics
    xb, yb = flip_shift(train.x[:8], train.y[:8])
    assert xb.shape == train.x[:8].shape and torch.equal(yb, train.y[:8])


def _rows(accs: dict[str, list[float]]) -> list[dict]:
    cost = {"dw3x3": 1, "dw5x5": 2, "dw7x7": 3, "dw9x9": 4, "mix35": 1.5, "mix357": 2, "mix3579": 2.5}
    return [{"kernels": k, "params": int(1000 * cost[k]), "macs": int(1e6 * cost[k]), "val_acc": a,
             "train_seconds": 1.0} for k, v in accs.items() for a in v]


def test_trend_statement_has_three_outcomes_by_the_stated_rule() -> None:
    holds = summarize(_rows({"dw3x3": [.70, .71, .70], "dw5x5": [.74, .75, .74], "dw7x7": [.75, .76, .75],
                             "dw9x9": [.70, .69, .70], "mix35": [.75, .75, .74], "mix357": [.76, .76, .77],
                             "mix3579": [.76, .77, .76]}))
    text = trend_statement(holds)
    assert "Claim 1 (mixing matches or beats the single large kernel at lower cost): supported." in text
    assert "Claim 2 (single kernels degrade past 7-9): supported" in text
    fails = summarize(_rows({"dw3x3": [.70, .70, .70], "dw5x5": [.72, .72, .72], "dw7x7": [.74, .74, .74],
                             "dw9x9": [.80, .80, .81], "mix35": [.72, .72, .72], "mix357": [.74, .74, .74],
                             "mix3579": [.70, .70, .70]}))
    text = trend_statement(fails)
    assert "Claim 1 (mixing matches or beats the single large kernel at lower cost): not supported." in text
    assert "Claim 2 (single kernels degrade past 7-9): not supported" in text
    # seeds so noisy that a 1-point margin cannot be decided either way
    noisy = summarize(_rows({"dw3x3": [.60, .80], "dw5x5": [.60, .80], "dw7x7": [.60, .80], "dw9x9": [.55, .80],
                             "mix35": [.55, .80], "mix357": [.60, .80], "mix3579": [.60, .80]}))
    text = trend_statement(noisy)
    assert "Claim 1 (mixing matches or beats the single large kernel at lower cost): inconclusive" in text
    assert "Claim 2 (single kernels degrade past 7-9): inconclusive" in text
    # one seed: no spread, so nothing is decided by accuracy (an underpowered run never defaults to "supported")
    single_seed = summarize(_rows({k: [v[0]] for k, v in {"dw3x3": [.70], "dw5x5": [.74], "dw7x7": [.75],
                                                           "dw9x9": [.60], "mix35": [.80], "mix357": [.80],
                                                           "mix3579": [.80]}.items()}))
    text = trend_statement(single_seed)
    assert ": supported" not in text and "inconclusive at this budget" in text


def test_summary_and_names() -> None:
    assert summarize(_rows({"dw3x3": [.5, .7]}))[0]["acc_std"] == pytest.approx(0.1414, abs=1e-3)
    assert kernel_name((3, 5, 7)) == "mix357" and kernel_name((9,)) == "dw9x9"


def test_finished_runs_are_kept_and_reused(tmp_path, monkeypatch) -> None:
    import kernelkit.train as train_module
    from kernelkit.apps.recipes.mixconv_ablation import ablation_jobs, report_ablation, run_ablation
    from kernelkit.runs import Run

    cfg = AblationConfig(dataset="digits", image_size=8, train_per_class=6, epochs=1, batch_size=20,
                         kernel_sets=((3,), (3, 5)), seeds=(0, 1), small_input=True)
    assert ablation_jobs(cfg) == [((3,), 0), ((3, 5), 0), ((3,), 1), ((3, 5), 1)]  # seed-major
    out = tmp_path / "abl"
    rows, _ = run_ablation(cfg, out, tmp_path, torch.device("cpu"))
    assert [(r["kernels"], r["seed"]) for r in rows] == [("dw3x3", 0), ("mix35", 0), ("dw3x3", 1), ("mix35", 1)]
    assert all((out / f"{r['kernels']}-seed{r['seed']}" / "row.json").exists() for r in rows)
    # a finished run drops its resume checkpoints and keeps its final weights (keep_weights defaults to True)
    assert not list(out.glob("*/checkpoints")) and len(list(out.glob("*/model.safetensors"))) == 4
    # without kept weights a finished run leaves only its row (a quick run stays small)
    light = tmp_path / "light"
    run_ablation(replace(cfg, keep_weights=False, seeds=(0,), kernel_sets=((3,),)), light, tmp_path,
                 torch.device("cpu"))
    assert [p.name for p in (light / "dw3x3-seed0").iterdir() if p.suffix != ".jsonl"] == ["row.json"]

    class NoTraining:
        def __init__(self, *args, **kwargs):
            raise AssertionError("a finished run was trained again")
    monkeypatch.setattr(train_module, "Trainer", NoTraining)
    again, _ = run_ablation(cfg, out, tmp_path, torch.device("cpu"))
    assert again == rows
    # another config does not reuse them; report-only mode collects nothing for it and trains nothing
    other = AblationConfig(**{**cfg.__dict__, "epochs": 2})
    assert run_ablation(other, out, tmp_path, torch.device("cpu"), train_missing=False)[0] == []
    partial, source = run_ablation(cfg, out, tmp_path, torch.device("cpu"), train_missing=False)
    with Run.create("t", {}, out=tmp_path / "run", quiet=True) as run:
        res = report_ablation(run.section("abl", "abl"), AblationConfig(**{**cfg.__dict__, "seeds": (0, 1, 2)}),
                              partial, source)
    assert res["trend"].startswith("INCOMPLETE: 4 of 6 planned runs finished")


def test_runs_are_claimed_by_one_live_process(tmp_path) -> None:
    import os

    from kernelkit.apps.recipes.mixconv_ablation import claim_run

    assert claim_run(tmp_path / "a") and claim_run(tmp_path / "a")  # ours, idempotent
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "claim.pid").write_text("1")  # held by a live process (init)
    assert os.getpid() != 1 and not claim_run(tmp_path / "b")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "claim.pid").write_text("999999999")  # no such process: taken over
    assert claim_run(tmp_path / "c") and (tmp_path / "c" / "claim.pid").read_text() == str(os.getpid())


def test_registered_with_its_config_and_quick_preset() -> None:
    from dataclasses import asdict

    from kernelkit.apps.recipes import EXPERIMENTS, recipe_config

    assert EXPERIMENTS.entry("mixconv_ablation").meta["config"] is AblationConfig
    quick = recipe_config("mixconv_ablation", True)
    assert recipe_config("mixconv_ablation", False) == AblationConfig()
    # the quick preset differs from the full run only in size and in not keeping each run's weights
    diff = {k for k, v in asdict(quick).items() if asdict(AblationConfig())[k] != v}
    assert diff == {"image_size", "train_per_class", "epochs", "batch_size", "keep_weights"}
    assert (quick.image_size, quick.train_per_class, quick.epochs, quick.batch_size) == (16, 100, 3, 50)


def test_headings_name_the_data_actually_used(tmp_path) -> None:
    from kernelkit.apps.recipes.mixconv_ablation import data_label

    cfg = AblationConfig(dataset="cifar10_jpg")
    _, _, source, _ = load_ablation_data(replace(cfg, image_size=8, train_per_class=2), tmp_path)  # empty root
    assert data_label(cfg, source) == "digits, embedded fallback"
    assert data_label(cfg, "CIFAR-10 test JPEGs ...") == "cifar10_jpg"


def test_the_papers_numbers_sit_in_a_labelled_published_box_beside_this_runs(tmp_path) -> None:
    from kernelkit.apps.recipes.mixconv_ablation import PAPER_FIG4_TOP1, report_ablation
    from kernelkit.runs import PublishedTable, Run

    cfg = AblationConfig(dataset="cifar10_jpg", kernel_sets=((3,), (3, 5, 7, 9)), seeds=(0, 1))
    rows = _rows({"dw3x3": [.70, .72], "mix3579": [.75, .75]})
    for r, seed in zip(rows, (0, 1, 0, 1), strict=True):
        r["seed"] = seed
    with Run.create("t", {}, out=tmp_path / "run", quiet=True) as run:
        sec = run.section("abl", "abl")
        report_ablation(sec, cfg, rows, "EMBEDDED FALLBACK: digits")
    (pub,) = [item for kind, item in sec.items if kind == "published"]
    assert isinstance(pub, PublishedTable)
    assert PAPER_FIG4_TOP1 == {"MobileNetV1": (71.1, 72.4), "MobileNetV2": (72.9, 74.1)}  # shared/specs/mixconv.md
    assert [r[0] for r in pub.rows] == ["MobileNetV1", "MobileNetV2"] and [r[-1] for r in pub.rows] == [1.3, 1.2]
    # the generated line: this run's change (74.0 - 71.0 = +4.0 points) beside the paper's, and what differs
    assert pub.differs.startswith("this run's dw3x3 -> mix3579 change is +4.0 points (71.0% -> 75.0%, 2 seeds), "
                                  "the paper's +1.2 on MobileNetV2")
    assert "digits, embedded fallback" in pub.differs and "ImageNet" in pub.differs
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Published (Tan &amp; Le 2019, BMVC, MixConv, Fig. 4, full MobileNetV1/V2 on ImageNet, top-1 %)" in html
    assert "<td>72.9</td>" in html and "Setting differs: this run&#x27;s dw3x3" in html
