"""``kernelkit ntk analytic|empirical|kernel|predict|reproduce``: kernels of the paper's network on your inputs.

Inputs are ``.npy``/``.npz``/``.csv`` files (rows = samples) or a built-in dataset (``circle``, ``digits``,
``mnist``). Every command writes a run directory with the kernels (``.npy`` and ``kernels.safetensors``),
a heatmap and a report; ``kernel`` writes one kernel block by block into a ``.npy`` file of any size
(resumable with ``--resume``) and a report naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from kernelkit.apps.cli.common import (
    RunOptions,
    abort,
    announce,
    check_file_out,
    check_out,
    check_rerun,
    fail,
    make_config,
    prepare,
    run_options,
    start_run,
)
from kernelkit.apps.configs.ntk import (
    NtkAnalyticConfig,
    NtkEmpiricalConfig,
    NtkKernelConfig,
    NtkNetworkConfig,
    NtkPredictConfig,
    NtkReproduceConfig,
)

app = typer.Typer(no_args_is_help=True)

InputsOpt = Annotated[str, typer.Option(
    "--inputs", "-x", help="File (.npy/.npz/.csv) or built-in: circle, digits, mnist.")]
Inputs2Opt = Annotated[str | None, typer.Option("--inputs2", help="Second input set (default: same as --inputs).")]
NOpt = Annotated[int | None, typer.Option("--n", min=1, help="Use the first N samples.")]
DepthOpt = Annotated[int, typer.Option("--depth", min=1, help="Number of weight layers (paper: L).")]
WidthOpt = Annotated[int, typer.Option("--width", min=1, help="Hidden width of the finite network.")]
ActOpt = Annotated[str, typer.Option("--activation", help="relu, erf, abs or identity.")]
BetaOpt = Annotated[float, typer.Option("--beta", help="Bias standard deviation β (0 = no bias).")]
ParamOpt = Annotated[str, typer.Option("--parametrization", help="ntk or standard.")]
BatchOpt = Annotated[int | None, typer.Option("--batch-size", min=1, help="Block size bounding memory.")]

_D = NtkNetworkConfig  # network defaults shared by every command
_DEFAULT_TIMES = ", ".join(f"{t:g}" for t in NtkPredictConfig.times)


def _load(spec: str, n: int | None) -> Any:
    from kernelkit.ntk.data import load_inputs

    try:
        return load_inputs(spec, n)
    except (OSError, ValueError) as exc:
        fail(str(exc))


def _net(cfg: NtkNetworkConfig, width: int) -> Any:
    from kernelkit.ntk.training import fc_network

    try:
        return fc_network(width, cfg.depth, cfg.beta or None, activation=cfg.activation,  # type: ignore[arg-type]
                          parametrization=cfg.parametrization)
    except ValueError as exc:
        fail(str(exc))


def _save_kernels(sec: Any, kernels: dict[str, Any], title: str) -> None:
    """``<name>.npy`` + one safetensors file, a heatmap per kernel and a summary table."""
    import numpy as np
    from matplotlib.figure import Figure

    from kernelkit.utils.checkpoint import save_tensors

    rows = []
    for name, k in kernels.items():
        np.save(sec.dir / f"{name}.npy", k.detach().cpu().numpy())
        row: dict[str, Any] = {"kernel": name, "shape": "×".join(map(str, k.shape)),
                               "min": float(k.min()), "max": float(k.max())}
        if k.dim() == 2 and k.shape[0] == k.shape[1]:
            ev = np.linalg.eigvalsh(k.double().cpu().numpy())
            row.update(trace=float(k.diagonal().sum()), lambda_max=float(ev[-1]), lambda_min=float(ev[0]))
        rows.append(row)
        fig = Figure(figsize=(4.5, 4))
        ax = fig.add_subplot()
        im = ax.imshow(k.detach().cpu().numpy().reshape(k.shape[0], -1), cmap="viridis")
        fig.colorbar(im, ax=ax)
        ax.set_title(f"{title}: {name}")
        sec.figure(fig, f"{name}_heatmap", caption=f"{name} kernel matrix")
    save_tensors(sec.dir / "kernels.safetensors", {k: v.contiguous() for k, v in kernels.items()})
    sec.table("Kernels", rows, note=f"Saved as .npy files and kernels.safetensors in {sec.dir}")
    files = [str(sec.dir / f"{n}.npy") for n in kernels] + [str(sec.dir / "kernels.safetensors")]
    sec.record(kernels=rows, files=files)


@app.command("analytic")
@run_options(NtkAnalyticConfig)
def analytic_cmd(inputs: InputsOpt = NtkAnalyticConfig.inputs, inputs2: Inputs2Opt = NtkAnalyticConfig.inputs2,
                 n: NOpt = NtkAnalyticConfig.n,
                 depth: DepthOpt = _D.depth, activation: ActOpt = _D.activation, beta: BetaOpt = _D.beta,
                 parametrization: ParamOpt = _D.parametrization, batch_size: BatchOpt = NtkAnalyticConfig.batch_size,
                 *, opts: RunOptions) -> None:
    """Infinite-width NNGP and NTK of the fully connected network (float64)."""
    from kernelkit.ntk import analytic

    cfg = prepare(make_config(NtkAnalyticConfig,
        inputs=inputs, inputs2=inputs2, n=n, depth=depth, activation=activation, beta=beta,
        parametrization=parametrization, batch_size=batch_size, **opts.settings()))
    a = _load(cfg.inputs, cfg.n)
    b = _load(cfg.inputs2, cfg.n) if cfg.inputs2 else None
    net = _net(cfg, 1)  # the width does not enter the limit
    try:
        k = analytic(net, a.x, None if b is None else b.x, batch_size=cfg.batch_size)
    except ValueError as exc:
        fail(str(exc))
    with start_run("ntk-analytic", cfg, opts.out, opts.quiet) as run:
        sec = run.section("ntk_analytic", "Infinite-width kernels")
        sec.data_source(a.source + ("" if b is None else f"; second set: {b.source}"))
        _save_kernels(sec, {"nngp": k.nngp, "ntk": k.ntk}, f"depth-{cfg.depth} {cfg.activation}")
    announce(run, opts.as_json, opts.quiet)


@app.command("empirical")
@run_options(NtkEmpiricalConfig)
def empirical_cmd(inputs: InputsOpt = NtkEmpiricalConfig.inputs, inputs2: Inputs2Opt = NtkEmpiricalConfig.inputs2,
                  n: NOpt = NtkEmpiricalConfig.n, depth: DepthOpt = _D.depth,
                  width: WidthOpt = NtkEmpiricalConfig.width, activation: ActOpt = _D.activation,
                  beta: BetaOpt = _D.beta, parametrization: ParamOpt = _D.parametrization,
                  method: Annotated[str, typer.Option(
                      "--method", help="auto, jacobian, ntvp, structured.")] = NtkEmpiricalConfig.method,
                  compare: Annotated[bool, typer.Option(
                      "--compare/--no-compare",
                      help="Also report the distance to the analytic limit.")] = NtkEmpiricalConfig.compare,
                  batch_size: BatchOpt = NtkEmpiricalConfig.batch_size, *, opts: RunOptions) -> None:
    """Empirical NTK of a randomly initialized finite network (and its distance to the limit)."""
    import torch

    from kernelkit.ntk import analytic, empirical

    cfg = prepare(make_config(NtkEmpiricalConfig,
        inputs=inputs, inputs2=inputs2, n=n, depth=depth, width=width, activation=activation, beta=beta,
        parametrization=parametrization, method=method, compare=compare, batch_size=batch_size,
        **opts.settings()))
    a = _load(cfg.inputs, cfg.n)
    b = _load(cfg.inputs2, cfg.n) if cfg.inputs2 else None
    net = _net(cfg, cfg.width).double().to(cfg.device)
    x1 = a.x.to(cfg.device)
    x2 = None if b is None else b.x.to(cfg.device)
    try:
        k = empirical(net, x1, x2, method=cfg.method, batch_size=cfg.batch_size)
    except ValueError as exc:
        fail(str(exc))
    with start_run("ntk-empirical", cfg, opts.out, opts.quiet) as run:
        sec = run.section("ntk_empirical", "Empirical NTK")
        sec.data_source(a.source + ("" if b is None else f"; second set: {b.source}"))
        kernels = {"ntk_empirical": k}
        if cfg.compare:
            lim = analytic(net, a.x, None if b is None else b.x, get="ntk").get("ntk")
            kernels["ntk_analytic"] = lim
            rel = float(torch.linalg.norm(k.cpu() - lim) / torch.linalg.norm(lim))
            sec.record(relative_frobenius_distance_to_limit=rel)
            sec.text(f"‖Θ_width{cfg.width} − Θ∞‖_F / ‖Θ∞‖_F = {rel:.4f}")
        _save_kernels(sec, kernels, f"width {cfg.width}")
    announce(run, opts.as_json, opts.quiet)


# the settings that define the numbers of a ``kernel`` file: a resumed file must have been started with them
_KERNEL_SETTINGS = ("inputs", "inputs2", "n", "depth", "activation", "beta", "parametrization", "kind", "block")


def _settings_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.kernel.json")


def _refuse_other_file(path: Path, settings: dict[str, Any], resume: bool) -> None:
    """Exit 2 unless ``path`` is new, or ``resume`` is asked and ``path`` was started with ``settings``."""
    from kernelkit.utils.io import read_json

    if not path.exists():
        return
    if not resume:
        fail(f"--out-file {path}: exists; pass --resume to continue it with the same settings, or remove it")
    sidecar = _settings_path(path)
    try:
        saved = read_json(sidecar)
    except (OSError, ValueError):
        fail(f"--out-file {path}: was not started by `kernelkit ntk kernel` ({sidecar.name} is missing or "
             "unreadable); remove it or choose another --out-file")
    other = [f"{k}: {saved.get(k)!r} there, {v!r} now" for k, v in settings.items() if saved.get(k) != v]
    if other:
        fail(f"--out-file {path}: holds a kernel with other settings ({'; '.join(other)}); "
             "use the same options or another --out-file")


@app.command("kernel")
@run_options(NtkKernelConfig)
def kernel_cmd(inputs: InputsOpt = NtkKernelConfig.inputs, inputs2: Inputs2Opt = NtkKernelConfig.inputs2,
               n: NOpt = NtkKernelConfig.n, depth: DepthOpt = _D.depth, activation: ActOpt = _D.activation,
               beta: BetaOpt = _D.beta, parametrization: ParamOpt = _D.parametrization,
               out_file: Annotated[Path, typer.Option(
                   "--out-file", help="The .npy file to write the kernel to.")] = Path(NtkKernelConfig.out_file),
               block: Annotated[int, typer.Option(
                   "--block", min=1, help="Rows and columns per block (memory holds one block).")
               ] = NtkKernelConfig.block,
               kind: Annotated[str, typer.Option("--kind", help="nngp or ntk.")] = NtkKernelConfig.kind,
               resume: Annotated[bool, typer.Option(
                   "--resume", help="Continue --out-file (started by this command with the same settings), "
                                    "keeping its finished blocks.")] = NtkKernelConfig.resume,
               *, opts: RunOptions) -> None:
    """Infinite-width NNGP or NTK (float64) block by block into a .npy file of any size; resumable."""
    import time

    from kernelkit.ntk import analytic
    from kernelkit.ntk.blocked import block_tasks, done_blocks, kernel_blocks, kernel_fn
    from kernelkit.utils.io import write_json

    cfg = prepare(make_config(NtkKernelConfig,
        inputs=inputs, inputs2=inputs2, n=n, depth=depth, activation=activation, beta=beta,
        parametrization=parametrization, out_file=str(out_file), block=block, kind=kind, resume=resume,
        **opts.settings()))
    check_out(opts.out)
    check_rerun(opts.out, cfg)
    path = Path(cfg.out_file)
    check_file_out("--out-file", path)
    settings = {k: getattr(cfg, k) for k in _KERNEL_SETTINGS}
    _refuse_other_file(path, settings, cfg.resume)
    a = _load(cfg.inputs, cfg.n)
    b = _load(cfg.inputs2, cfg.n) if cfg.inputs2 else None
    net = _net(cfg, 1)  # the width does not enter the limit
    n2 = len(a.x) if b is None else len(b.x)
    total = len(block_tasks(len(a.x), n2, cfg.block, b is None))
    t0 = time.perf_counter()
    try:
        kept = len(done_blocks(path)) if cfg.resume and path.exists() else 0
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(_settings_path(path), settings)
        k = kernel_blocks(kernel_fn(analytic, net, get=cfg.kind), a.x, None if b is None else b.x,
                          block=cfg.block, out=path, resume=cfg.resume, progress=not opts.quiet)
    except ValueError as exc:
        fail(str(exc) if str(path) in str(exc) else f"--inputs: {exc}")
    except OSError as exc:
        abort(f"--out-file {path}: cannot write it ({exc.strerror or exc})")
    seconds = time.perf_counter() - t0
    with start_run("ntk-kernel", cfg, opts.out, opts.quiet) as run:
        sec = run.section("ntk_kernel", f"Infinite-width {cfg.kind.upper()} in blocks")
        sec.data_source(a.source + ("" if b is None else f"; second set: {b.source}"))
        row = {"kernel": cfg.kind, "shape": "×".join(map(str, k.shape)), "file": str(path), "block": cfg.block,
               "blocks": total, "blocks kept from an earlier run": kept, "seconds": round(seconds, 2)}
        sec.table("Kernel file", [row], note="Symmetric kernels compute the blocks on and above the diagonal "
                                             "once; the lower triangle is their transpose.")
        sec.record(kernel=row, file=str(path), blocks=total, blocks_kept=kept)
    announce(run, opts.as_json, opts.quiet)


@app.command("predict")
@run_options(NtkPredictConfig)
def predict_cmd(train: Annotated[str, typer.Option(
                    "--train", help="Training inputs (.npz with x, y; or built-in).")] = NtkPredictConfig.train,
                test: Annotated[str, typer.Option(
                    "--test", help="Test inputs (file or built-in).")] = NtkPredictConfig.test,
                y: Annotated[Path | None, typer.Option(
                    "--y", help="Targets (.npy/.csv) for file inputs without y.")] = None,
                n_train: Annotated[int, typer.Option("--n-train", min=1)] = NtkPredictConfig.n_train,
                n_test: Annotated[int, typer.Option("--n-test", min=1)] = NtkPredictConfig.n_test,
                depth: DepthOpt = _D.depth, activation: ActOpt = _D.activation, beta: BetaOpt = _D.beta,
                parametrization: ParamOpt = _D.parametrization,
                times: Annotated[list[float] | None, typer.Option(
                    "--t", help=f"Times (steps × lr); repeatable (default {_DEFAULT_TIMES}; ∞ is always added).")
                ] = None,
                learning_rate: Annotated[float, typer.Option("--lr")] = NtkPredictConfig.learning_rate,
                diag_reg: Annotated[float, typer.Option("--diag-reg", min=0.0)] = NtkPredictConfig.diag_reg,
                *, opts: RunOptions) -> None:
    """Mean and std of infinite-width networks trained by gradient descent on MSE (closed form)."""
    import numpy as np
    import torch

    from kernelkit.ntk import analytic
    from kernelkit.ntk.data import circle
    from kernelkit.ntk.predict import gradient_descent_mse_ensemble

    cfg = prepare(make_config(NtkPredictConfig,
        train=train, test=test, y=str(y) if y is not None else None, n_train=n_train, n_test=n_test, depth=depth,
        activation=activation, beta=beta, parametrization=parametrization,
        times=tuple(times) if times else NtkPredictConfig.times, learning_rate=learning_rate, diag_reg=diag_reg,
        **opts.settings()))
    if cfg.y is not None and cfg.train == "circle":
        fail(f"--y {cfg.y}: the built-in --train circle has its own targets (y = x₁x₂); --y is for file inputs")
    if cfg.train == "circle":
        g = torch.Generator().manual_seed(cfg.seed)
        gam = torch.rand(cfg.n_train, generator=g, dtype=torch.float64) * 2 * np.pi - np.pi
        xtr = torch.stack([gam.cos(), gam.sin()], 1)
        tr_x, tr_y = xtr, xtr[:, 0] * xtr[:, 1]
        tr_src = f"generated: {cfg.n_train} random circle points, y = x₁x₂"
    else:
        a = _load(cfg.train, cfg.n_train)
        tr_x, tr_y, tr_src = a.x, a.y, a.source
        if cfg.y is not None:
            tr_y = _load(cfg.y, cfg.n_train).x.reshape(len(tr_x), -1).squeeze(-1)
        if tr_y is None:
            fail(f"--train {cfg.train}: no targets; pass an .npz with 'y' or --y FILE")
        tr_y = torch.as_tensor(tr_y, dtype=torch.float64)
        if tr_y.dim() == 1 and cfg.train in ("digits", "mnist"):
            tr_y = torch.nn.functional.one_hot(tr_y.long(), 10).double() - 0.1
    te = circle(cfg.n_test) if cfg.test == "circle" else _load(cfg.test, cfg.n_test)
    if te.x.shape[1:] != tr_x.shape[1:]:
        fail(f"--test has features {tuple(te.x.shape[1:])} but --train has {tuple(tr_x.shape[1:])}")
    net = _net(cfg, 1)
    x_all = torch.cat([tr_x.double(), te.x.double()])
    k = analytic(net, x_all)
    nt = len(tr_x)
    ts: list[float | None] = [*cfg.times, None]
    rows, preds = [], {}
    for t in ts:
        ntk_k, nngp_k = k.get("ntk"), k.get("nngp")
        mean, cov = gradient_descent_mse_ensemble(ntk_k[:nt, :nt], ntk_k[nt:, :nt], nngp_k[:nt, :nt],
                                                  nngp_k[nt:, :nt], nngp_k[nt:, nt:], tr_y, t=t,
                                                  learning_rate=cfg.learning_rate, diag_reg=cfg.diag_reg)
        std = cov.diagonal().clamp_min(0).sqrt()
        key = "inf" if t is None else f"{t:g}"
        preds[f"mean_t{key}"], preds[f"std_t{key}"] = mean, std
        row: dict[str, Any] = {"t": key, "mean |f|": float(mean.abs().mean()), "mean std": float(std.mean())}
        if te.y is not None and cfg.test != "circle" and te.y.shape == mean.shape:
            row["test MSE"] = float(((mean - te.y.double()) ** 2).mean())
        elif cfg.test == "circle" and mean.dim() == 1:
            row["test MSE vs x₁x₂"] = float(((mean - te.x[:, 0] * te.x[:, 1]) ** 2).mean())
        rows.append(row)
    with start_run("ntk-predict", cfg, opts.out, opts.quiet) as run:
        sec = run.section("ntk_predict", "Gradient-flow prediction (infinite width)")
        sec.data_source(f"train: {tr_src}; test: {te.source}")
        sec.table("Test predictions over random initializations (NTK ensemble)", rows)
        sec.record(predictions=rows)
        _save_kernels(sec, {"ntk": k.ntk, "nngp": k.nngp, **{n: v.reshape(len(v), -1) for n, v in preds.items()}},
                      "train+test")
    announce(run, opts.as_json, opts.quiet)


@app.command("reproduce")
@run_options(NtkReproduceConfig)
def reproduce_cmd(quick: Annotated[bool, typer.Option(
                      "--quick", help="Small settings, same code path.")] = NtkReproduceConfig.quick,
                  only: Annotated[list[str] | None, typer.Option(
                      "--only", help="NTK experiments to run, e.g. ntk_fig1, ntk_linearize (default: all).")] = None,
                  *, opts: RunOptions) -> None:
    """Run the paper's Figures 1–3 (the NTK section of ``kernelkit reproduce``)."""
    import torch

    from kernelkit.apps.recipes import EXPERIMENTS, recipe_configs, run_experiments

    names = [e.name for e in EXPERIMENTS.entries() if e.meta["system"] == "ntk"]
    if only:
        unknown = [o for o in only if o not in names]
        if unknown:
            fail(f"--only {unknown}: unknown NTK experiment(s); known: {', '.join(names)}")
        names = [n for n in names if n in only]
    cfg = prepare(NtkReproduceConfig(quick=quick, only=list(only or []), experiments=names,
                                     recipes=recipe_configs(names, quick), **opts.settings()))
    assert cfg.data_root is not None
    with start_run("ntk-reproduce", cfg, opts.out, opts.quiet) as run:
        run_experiments(run, names, quick=cfg.quick, seed=cfg.seed, device=torch.device(cfg.device),
                        data_root=Path(cfg.data_root))
    announce(run, opts.as_json, opts.quiet)
    if any(sec.status == "failed" for sec in run.sections):
        raise typer.Exit(1)
