"""Lee et al. 2019, "Wide neural networks of any depth evolve as linear models under gradient descent", at CPU
scale: a finite fully connected ReLU network, its linearization (:func:`kernelkit.ntk.linearize`) and the
analytic NTK's gradient-descent prediction (:func:`kernelkit.ntk.predict.gradient_descent_mse`), as the width
grows.

The network (NTK parametrization, :func:`kernelkit.ntk.training.fc_network`) and its linearization take the same
full-batch gradient-descent steps on MSE from the same initialization (:func:`kernelkit.ntk.training.train_mse`).
The kernel prediction is the closed-form gradient flow of the infinite-width NTK started from the network's
initial outputs. The paper's result: ``sup_t ‖f_t − f_t^lin‖ = O(1/√width)``, so the RMSE between the network's
and the linearization's test outputs should fall with a log-log slope near −1/2. Settings:
:mod:`kernelkit.apps.configs.ntk_linearize`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from kernelkit.apps.configs.ntk_linearize import NtkLinearizeConfig
from kernelkit.apps.recipes import ExperimentContext, register_experiment
from kernelkit.ntk import analytic, linearize
from kernelkit.ntk.data import digits
from kernelkit.ntk.predict import gradient_descent_mse, max_learning_rate
from kernelkit.ntk.training import fc_network, train_mse
from kernelkit.runs import Section

PREDICTED_SLOPE = -0.5
SOURCE = "Lee, Xiao, Schoenholz, Bahri, Novak, Sohl-Dickstein & Pennington 2019, NeurIPS, Figs. 1 and 4"


@dataclass
class Trajectories:
    """Outputs recorded at ``steps`` for one width and seed: ``(len(steps), N, O)`` tensors (float64)."""

    steps: list[int]
    train_finite: Tensor
    train_linear: Tensor
    test_finite: Tensor
    test_linear: Tensor
    test_kernel: Tensor  # the analytic NTK prediction from the same initial outputs


def record_steps(steps: int, records: int) -> list[int]:
    """Steps at which outputs are recorded: 0, ``steps`` and ``records`` evenly spaced ones between."""
    every = max(1, steps // max(records, 1))
    return sorted({*range(0, steps + 1, every), steps})


def train_both(width: int, depth: int, beta: float, x_train: Tensor, y_train: Tensor, x_test: Tensor, lr: float,
               steps: int, at: list[int], seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Train the network of ``width`` (initialized under ``seed``, float32) and its linearization with the same
    gradient descent; their train and test outputs at the steps ``at``: ``(train_f, train_lin, test_f,
    test_lin)``. The caller's random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = fc_network(width, depth, beta, out=y_train.shape[1])
        with torch.no_grad():
            net(x_train[:1].float())
    lin = linearize(net)
    xtr, xte, y = x_train.float(), x_test.float(), y_train.float()
    wanted = set(at)
    out: dict[str, list[Tensor]] = {"train_f": [], "test_f": [], "train_lin": [], "test_lin": []}

    def keep(model: torch.nn.Module, tag: str) -> Callable[[int, Tensor], None]:
        def callback(step: int, train_out: Tensor) -> None:
            if step in wanted:
                out[f"train_{tag}"].append(train_out.detach().double().clone())
                with torch.no_grad():
                    out[f"test_{tag}"].append(model(xte).detach().double())
        return callback

    train_mse(lin, xtr, y, lr, steps, keep(lin, "lin"))
    train_mse(net, xtr, y, lr, steps, keep(net, "f"))
    return (torch.stack(out["train_f"]), torch.stack(out["train_lin"]), torch.stack(out["test_f"]),
            torch.stack(out["test_lin"]))


def rmse(a: Tensor, b: Tensor) -> float:
    return float((a - b).pow(2).mean().sqrt())


def sup_rmse(a: Tensor, b: Tensor) -> float:
    """The largest RMSE over recorded steps (the paper's ``sup_t``) of ``(steps, N, O)`` outputs."""
    return float((a - b).pow(2).mean(dim=(1, 2)).sqrt().max())


def fitted_slope(widths: list[int], values: list[float]) -> float:
    """Least-squares slope of ``log(value)`` against ``log(width)``."""
    return float(np.polyfit(np.log(widths), np.log(values), 1)[0])


def run_width(width: int, cfg: NtkLinearizeConfig, x_train: Tensor, y_train: Tensor, x_test: Tensor,
              ntk_train: Tensor, ntk_test_train: Tensor, lr: float, seed: int) -> Trajectories:
    """One width and seed: network, linearization and the NTK prediction from the network's initial outputs."""
    at = record_steps(cfg.steps, cfg.records)
    tr_f, tr_lin, te_f, te_lin = train_both(width, cfg.depth, cfg.beta, x_train, y_train, x_test, lr, cfg.steps,
                                            at, seed)
    predict = gradient_descent_mse(ntk_train, y_train, learning_rate=lr)
    pred = predict(t=torch.tensor(at, dtype=torch.float64), fx_train_0=tr_f[0], fx_test_0=te_f[0],
                   k_test_train=ntk_test_train)
    assert pred.test is not None
    return Trajectories(at, tr_f, tr_lin, te_f, te_lin, pred.test)


@register_experiment("ntk_linearize", system="ntk",
                     title="Wide networks evolve as their linearization (Lee et al. 2019)", config=NtkLinearizeConfig)
def linearized_networks(ctx: ExperimentContext) -> None:
    sec = ctx.section
    cfg = ctx.config_as(NtkLinearizeConfig)
    data = digits(cfg.n_train + cfg.n_test, seed=ctx.seed, root=ctx.data_root)
    sec.data_source(f"{data.source}; first {cfg.n_train} for training, the other {cfg.n_test} for testing; "
                    "inputs scaled to unit norm, targets one-hot − 0.1")
    x = data.x / data.x.norm(dim=1, keepdim=True)
    assert data.y is not None
    y = torch.nn.functional.one_hot(data.y.long(), 10).double() - 0.1
    xtr, xte, ytr, yte = x[:cfg.n_train], x[cfg.n_train:], y[:cfg.n_train], y[cfg.n_train:]
    k = analytic(fc_network(1, cfg.depth, cfg.beta), x, get="ntk").get("ntk")
    ntk_train, ntk_test_train = k[:cfg.n_train, :cfg.n_train], k[cfg.n_train:, :cfg.n_train]
    lr = cfg.lr_fraction * max_learning_rate(ntk_train, ytr.numel())

    rows, runs = [], {}
    for width in sec.progress(cfg.widths, "ntk_linearize widths", total=len(cfg.widths)):
        per_seed = [run_width(width, cfg, xtr, ytr, xte, ntk_train, ntk_test_train, lr,
                              ctx.seed * 100_003 + width * 31 + s) for s in range(cfg.seeds)]
        runs[width] = per_seed[0]
        gaps = {
            "f_vs_lin": [sup_rmse(r.test_finite, r.test_linear) for r in per_seed],
            "f_vs_ntk": [sup_rmse(r.test_finite, r.test_kernel) for r in per_seed],
            "lin_vs_ntk": [sup_rmse(r.test_linear, r.test_kernel) for r in per_seed],
        }
        last = per_seed[0]
        rows.append({"width": width,
                     "sup_t RMSE(f, f_lin)": float(np.mean(gaps["f_vs_lin"])),
                     "sup_t RMSE(f, NTK)": float(np.mean(gaps["f_vs_ntk"])),
                     "sup_t RMSE(f_lin, NTK)": float(np.mean(gaps["lin_vs_ntk"])),
                     "final test MSE f": float(np.mean([rmse(r.test_finite[-1], yte) ** 2 for r in per_seed])),
                     "final test MSE f_lin": float(np.mean([rmse(r.test_linear[-1], yte) ** 2 for r in per_seed])),
                     "final test MSE NTK": rmse(last.test_kernel[-1], yte) ** 2})
    widths = [int(r["width"]) for r in rows]
    slope = fitted_slope(widths, [r["sup_t RMSE(f, f_lin)"] for r in rows])
    slope_ntk = fitted_slope(widths, [r["sup_t RMSE(f, NTK)"] for r in rows])
    holds = abs(slope - PREDICTED_SLOPE) <= cfg.slope_tolerance
    sec.table(f"Finite network f vs linearization f_lin vs analytic NTK prediction (depth {cfg.depth} ReLU, "
              f"{cfg.steps} GD steps, lr {lr:.3g}, mean over {cfg.seeds} seed(s))",
              [{k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
              note="sup_t RMSE: the largest root-mean-square difference of the test outputs over the recorded "
                   "steps (the paper bounds sup_t ‖f_t − f_t^lin‖ by O(1/√width)).")
    verdict = "consistent with" if holds else "not consistent with"
    sec.text(f"RMSE(f, f_lin) falls with width as width^{slope:.2f} (least-squares fit on log-log axes over widths "
             f"{widths[0]}–{widths[-1]}); {verdict} the predicted slope −1/2 by the rule |slope + 0.5| <= "
             f"{cfg.slope_tolerance:g}. RMSE(f, NTK prediction) falls as width^{slope_ntk:.2f}.")
    sec.published("Predicted scaling", [{"quantity": "sup_t ‖f_t − f_t^lin‖", "order": "O(width^-1/2)"}],
                  source=SOURCE, setting="NTK parametrization, gradient descent on MSE with lr below 2n/λ_max; "
                                         "their figures: CIFAR-10 subsets, widths up to 2^13-2^15, GPU",
                  differs=f"{data.source.split(';')[0]}, {cfg.n_train} training points, widths "
                          f"{cfg.widths[0]}–{cfg.widths[-1]}, {cfg.steps} steps on a CPU")
    sec.record(linearize={"rows": rows, "slope_f_vs_lin": slope, "slope_f_vs_ntk": slope_ntk,
                          "slope_rule_holds": holds, "lr": lr, "steps": cfg.steps})
    _figure(sec, runs, rows, ytr, slope)


def _figure(sec: Section, runs: dict[int, Trajectories], rows: list[dict[str, float]], y_train: Tensor,
            slope: float) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 3.8))
    ax_out, ax_loss, ax_gap = fig.subplots(1, 3)
    colors = dict(zip(runs, ["C0", "C1", "C2", "C3", "C4", "C5", "C6", "C7"], strict=False))
    for width in (min(runs), max(runs)):
        r = runs[width]
        c = colors[width]
        ax_out.plot(r.steps, r.test_finite[:, 0, 0], color=c, label=f"f, width {width}")
        ax_out.plot(r.steps, r.test_linear[:, 0, 0], color=c, ls="--", label=f"f_lin, width {width}")
        ax_out.plot(r.steps, r.test_kernel[:, 0, 0], color=c, ls=":", label=f"NTK, width {width}")
    ax_out.set(xlabel="GD step", ylabel="test output (point 0, logit 0)", title="One test output")
    ax_out.legend(fontsize=6)
    for width, r in runs.items():
        c = colors.get(width, "k")
        ax_loss.plot(r.steps, 0.5 * (r.train_finite - y_train).pow(2).mean(dim=(1, 2)), color=c, label=f"{width}")
        ax_loss.plot(r.steps, 0.5 * (r.train_linear - y_train).pow(2).mean(dim=(1, 2)), color=c, ls="--")
    ax_loss.set(xlabel="GD step", ylabel="train loss", yscale="log", title="Train loss (solid f, dashed f_lin)")
    ax_loss.legend(fontsize=6, title="width")
    widths = [int(r["width"]) for r in rows]
    for key, mark in (("sup_t RMSE(f, f_lin)", "o-"), ("sup_t RMSE(f, NTK)", "s-"), ("sup_t RMSE(f_lin, NTK)", "^-")):
        ax_gap.plot(widths, [r[key] for r in rows], mark, label=key.removeprefix("sup_t "))
    first = rows[0]["sup_t RMSE(f, f_lin)"]
    ax_gap.plot(widths, [first * math.sqrt(widths[0] / w) for w in widths], "k:", label="∝ width^-1/2")
    ax_gap.set(xscale="log", yscale="log", xlabel="width", ylabel="sup_t RMSE of test outputs",
               title=f"Gap vs width (fitted slope {slope:.2f})")
    ax_gap.legend(fontsize=7)
    fig.tight_layout()
    sec.figure(fig, "ntk_linearize", caption="Finite network (solid), its linearization (dashed) and the analytic "
               "NTK prediction (dotted); right: the finite–linear gap against width on log-log axes.")
