"""Registered experiments (recipes) and the runner behind ``kernelkit reproduce``.

Each recipe is one module in this package that registers its experiments with::

    @register_experiment("ntk_fig1", system="ntk", title="Fig. 1: NTK at init and after training",
                         config=NtkFig1Config)
    def fig1(ctx: ExperimentContext) -> None:
        cfg: NtkFig1Config = ctx.config     # NtkFig1Config() or NtkFig1Config.quick()
        ctx.section.data_source("generated points on the unit circle")
        ...  # ctx.seed, ctx.device; fill ctx.section with tables/figures/results

``config`` is a dataclass from :mod:`kernelkit.apps.configs` (full run by default, ``quick()`` the
small preset); :func:`recipe_configs` gives every chosen recipe's config so ``reproduce`` records them.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from kernelkit.registry import Registry
from kernelkit.runs import Run, Section

C = TypeVar("C")

SYSTEMS: dict[str, str] = {
    "ntk": "Neural tangent kernels",
    "unireplknet": "Large-kernel ConvNets (UniRepLKNet)",
    "mixconv": "Mixed depthwise kernels (MixConv / MixNet)",
    "fscil": "Few-shot class-incremental learning (TEEN)",
    "m4le": "Long-context evaluation (M4LE)",
}


@dataclass
class ExperimentContext:
    """What an experiment receives: where to write, and the run-wide settings."""

    section: Section
    quick: bool
    seed: int
    device: torch.device
    data_root: Path
    config: Any = None

    def config_as(self, cls: type[C]) -> C:
        """The run's config when it is a ``cls`` (``reproduce`` passes it), else the preset ``quick`` names."""
        if isinstance(self.config, cls):
            return self.config
        return cls.quick() if self.quick else cls()  # type: ignore[attr-defined,no-any-return]


ExperimentFn = Callable[[ExperimentContext], None]

EXPERIMENTS: Registry[ExperimentFn] = Registry("experiment", discover=("kernelkit.apps.recipes",))


def register_experiment(name: str, *, system: str, title: str,
                        config: type | None = None) -> Callable[[ExperimentFn], ExperimentFn]:
    """Register an experiment of ``system`` (a key of :data:`SYSTEMS`) with its config dataclass."""
    if system not in SYSTEMS:
        raise ValueError(f"unknown system {system!r}; expected one of {sorted(SYSTEMS)}")
    return EXPERIMENTS.register(name, system=system, title=title, config=config)


def recipe_config(name: str, quick: bool) -> Any:
    """The config an experiment runs with: its dataclass's full defaults, or ``quick()``; None if it has none."""
    cls = EXPERIMENTS.entry(name).meta.get("config")
    if cls is None:
        return None
    return cls.quick() if quick else cls()


def recipe_configs(names: Sequence[str], quick: bool) -> dict[str, Any]:
    """``{experiment: asdict(config)}`` for the chosen experiments (what ``reproduce`` records)."""
    from dataclasses import asdict

    out: dict[str, Any] = {}
    for n in names:
        cfg = recipe_config(n, quick)
        out[n] = asdict(cfg) if cfg is not None else None
    return out


def select(only: Sequence[str] | None = None) -> list[str]:
    """Experiment names to run: all, or those whose name or system is in ``only``."""
    entries = EXPERIMENTS.entries()
    if not only:
        return [e.name for e in entries]
    chosen: list[str] = []
    for token in only:
        matches = [e.name for e in entries if token in (e.name, e.meta["system"])]
        if not matches:
            known = sorted({e.meta["system"] for e in entries} | {e.name for e in entries})
            import difflib

            close = difflib.get_close_matches(token, known, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(known) or 'none'}"
            raise ValueError(f"--only {token!r} matches no experiment or system{hint}")
        chosen += [m for m in matches if m not in chosen]
    return chosen


def run_experiments(run: Run, names: Sequence[str], *, quick: bool, seed: int, device: torch.device,
                    data_root: Path, on_done: Callable[[str, Section], Any] | None = None) -> list[Section]:
    """Run experiments one after another; a failure is recorded in its section and the rest go on."""
    order = sorted(names, key=lambda n: (list(SYSTEMS).index(EXPERIMENTS.entry(n).meta["system"]), n))
    sections = []
    for name in order:
        entry = EXPERIMENTS.entry(name)
        system = entry.meta["system"]
        sec = run.section(name, f"{SYSTEMS[system]} — {entry.meta['title']}")
        sec.results["system"] = system
        t0 = time.time()
        try:
            entry.obj(ExperimentContext(sec, quick, seed, device, data_root, recipe_config(name, quick)))
        except KeyboardInterrupt:
            sec.status = "interrupted"
            raise
        except Exception as exc:  # one broken experiment must not lose the others' results
            sec.status = "failed"
            sec.text(f"Failed: {type(exc).__name__}: {exc}")
            sec.results["error"] = "".join(traceback.format_exception(exc))[-4000:]
        finally:
            sec.seconds = time.time() - t0
            run.log(section=name, event="finished", status=sec.status, seconds=round(sec.seconds, 2))
            run.write()  # keep report.html current: an interruption loses no finished section
        sections.append(sec)
        if on_done:
            on_done(name, sec)
    return sections
