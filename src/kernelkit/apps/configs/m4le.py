"""Configs of the ``kernelkit m4le`` commands and of the ``m4le_rope_scaling`` recipe.

Library defaults are referenced, not repeated: bucket sizes (:data:`kernelkit.longctx.length.BUCKETS`),
build size and seed (:mod:`kernelkit.longctx.tasks`), generation settings
(:class:`kernelkit.longctx.runner.GenParams`, nested as ``gen``), RoPE methods
(:data:`kernelkit.longctx.rope.METHODS`), the HF backend's dtype and the OpenAI client's concurrency.
The checks of a command's inputs live in each config's ``__post_init__`` (``ValueError`` naming the option).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from kernelkit.apps.configs.base import RunSettings
from kernelkit.longctx.backends.hf import DTYPES, HF_DTYPE
from kernelkit.longctx.backends.openai_http import CONCURRENCY
from kernelkit.longctx.length import BUCKETS
from kernelkit.longctx.rope import METHODS
from kernelkit.longctx.runner import GenParams
from kernelkit.longctx.scoring import NORMALISERS
from kernelkit.longctx.shards import Shard
from kernelkit.longctx.tasks import ABILITIES, DEFAULT_N, DEFAULT_SEED, task_def

#: The backend of ``m4le run`` and ``m4le serve`` unless told otherwise (offline, no download).
DEFAULT_BACKEND = "smollm2"


#: The ``device_map`` values of ``from_pretrained`` that place a model over the visible devices (accelerate).
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")


def _check_device_map(device_map: str | None, backend: str) -> None:
    if device_map is None:
        return
    if device_map not in DEVICE_MAPS:
        raise ValueError(f"--device-map: expected one of {', '.join(DEVICE_MAPS)}, got {device_map!r}")
    if backend != "hf":
        raise ValueError(f"--device-map: applies to --backend hf only, not --backend {backend}")


def _check_rope(rope: str, factor: float) -> None:
    if rope not in METHODS:
        raise ValueError(f"--rope: expected one of {', '.join(METHODS)}, got {rope!r}")
    if not (math.isfinite(factor) and factor >= 1):  # nan and inf too
        raise ValueError(f"--rope-factor: must be a finite number >= 1, got {factor}")


@dataclass(kw_only=True)
class M4leTasksConfig:
    """``kernelkit m4le tasks``: where to look for each task's source files."""

    data_root: str | None = None


@dataclass(kw_only=True)
class M4leBuildConfig(RunSettings):
    """Every input of ``kernelkit m4le build``: ``n`` seeded instances per bucket of each task."""

    tasks: tuple[str, ...]
    buckets: tuple[int, ...] = BUCKETS
    n: int = DEFAULT_N
    one_shot: bool = True
    device: str = "cpu"
    seed: int = DEFAULT_SEED

    def __post_init__(self) -> None:
        if not self.buckets or min(self.buckets) <= 0:
            raise ValueError(f"--buckets: need positive integers, got {self.buckets}")
        if self.n < 1:
            raise ValueError(f"--n: must be >= 1, got {self.n}")


@dataclass(kw_only=True)
class M4leRunConfig(RunSettings):
    """Every input of ``kernelkit m4le run``; ``gen`` holds the generation settings that key the results.

    ``records`` is a records file; with ``official`` (an M4LE config name) the official records of that
    config are read from ``records`` (a folder or file, :func:`kernelkit.longctx.records.load_official`) or,
    without it, from the hub dataset. ``tasks``, ``buckets`` and ``abilities`` narrow the records (empty: all),
    ``limit`` caps each (task, bucket), and ``shard`` (``"i/n"``) answers one disjoint part of that selection
    (:mod:`kernelkit.longctx.shards`). ``device_map`` (HF backend) spreads the model over the visible GPUs
    instead of placing it on ``device``.
    """

    records: str | None = None
    official: str | None = None
    backend: str = DEFAULT_BACKEND
    model: str | None = None
    base_url: list[str] | None = None  # OpenAI backend: one server, or replicas used in turn
    task: str | None = None
    results: str | None = None
    limit: int | None = None
    tasks: tuple[str, ...] = ()  # filters: empty = all
    buckets: tuple[int, ...] = ()
    abilities: tuple[str, ...] = ()
    shard: str | None = None  # "i/n": this process answers shard i of n of the selection
    batch_size: int = 1
    gen: GenParams = field(default_factory=GenParams)
    rope: str = "none"
    rope_factor: float = 1.0
    max_context: int | None = None  # HF backends: tokens of prompt + answer (default: trained context x factor)
    concurrency: int = CONCURRENCY
    dtype: str = HF_DTYPE
    device: str = "auto"
    device_map: str | None = None  # HF backend: accelerate's placement over all visible GPUs (then CPU)

    def __post_init__(self) -> None:
        from kernelkit.longctx.backends import BACKENDS

        _check_rope(self.rope, self.rope_factor)
        _check_device_map(self.device_map, self.backend)
        if self.shard is not None:
            try:
                Shard.parse(self.shard)
            except ValueError as exc:
                raise ValueError(f"--shard: {exc}") from None
        for task_name in self.tasks:
            try:
                task_def(task_name)
            except KeyError as exc:
                raise ValueError(f"--tasks: {exc.args[0] if exc.args else exc}") from None
        for ability in self.abilities:
            if ability not in ABILITIES:
                raise ValueError(f"--abilities: unknown ability {ability!r}; expected one of {', '.join(ABILITIES)}")
        if any(b <= 0 for b in self.buckets):
            raise ValueError(f"--buckets: need positive integers, got {self.buckets}")
        if self.max_context is not None:
            if self.max_context < 2:
                raise ValueError(f"--max-context: must be >= 2 tokens, got {self.max_context}")
            if self.backend == "openai":
                raise ValueError("--max-context: applies to the hf and smollm2 backends (a server sets its own)")
        if self.records is None and self.official is None:
            raise ValueError("--records: give a records file, or --official CONFIG for the official M4LE records")
        if self.backend not in BACKENDS:
            raise ValueError(BACKENDS.unknown_message(self.backend))
        for option, name in (("--official", self.official), ("--task", self.task)):
            if name is not None:
                try:
                    task_def(name)
                except KeyError as exc:  # results of an unknown task could never be scored
                    raise ValueError(f"{option}: {exc.args[0] if exc.args else exc}") from None
        if self.dtype not in DTYPES:
            raise ValueError(f"--dtype: expected {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.backend == "openai" and not (self.base_url and self.model):
            raise ValueError("--backend openai needs --base-url and --model")
        if self.backend == "hf" and not self.model:
            raise ValueError("--backend hf needs --model (a local folder or a cached hub id)")


@dataclass(kw_only=True)
class M4leScoreConfig:
    """Every input of ``kernelkit m4le score``: the results files scored together."""

    results: tuple[str, ...]


@dataclass(kw_only=True)
class M4leReportConfig:
    """Every input of ``kernelkit m4le report``; with ``reference_model`` scores are normalised by its
    first-bucket score (``normaliser``: a key of :data:`kernelkit.longctx.scoring.NORMALISERS`)."""

    results: tuple[str, ...]
    reference_model: str | None = None
    normaliser: str = "half"

    def __post_init__(self) -> None:
        if self.normaliser not in NORMALISERS:
            raise ValueError(f"--normaliser: expected one of {', '.join(sorted(NORMALISERS))}, got {self.normaliser!r}")


@dataclass(kw_only=True)
class M4leServeConfig:
    """Every input of ``kernelkit m4le serve``."""

    backend: str = DEFAULT_BACKEND
    model: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    chat: bool = GenParams.chat_template
    rope: str = "none"
    rope_factor: float = 1.0
    device: str = "auto"  # --backend hf
    device_map: str | None = None  # --backend hf: accelerate's placement over the visible GPUs

    def __post_init__(self) -> None:
        _check_rope(self.rope, self.rope_factor)
        _check_device_map(self.device_map, self.backend)
        if self.backend not in ("smollm2", "hf"):
            raise ValueError(f"--backend: expected smollm2 or hf, got {self.backend!r}")
        if self.backend == "hf" and not self.model:
            raise ValueError("--backend hf needs --model")


@dataclass(kw_only=True)
class M4leRopeScalingConfig:
    """The ``m4le_rope_scaling`` recipe: full run by default, :meth:`quick` the small preset.

    ``n`` instances per task and bucket, answered under each RoPE method of ``methods`` at ``factor``;
    ``sanity_n`` one-passage instances built for a ``sanity_bucket``-word bucket; next-token loss over
    the position ranges between ``loss_edges``; ``generations_per_group`` raw answers shown per task and
    bucket. The full run has one task per ability (semantic single/multiple, explicit single/multiple,
    global) at 1k-8k.
    """

    tasks: tuple[str, ...] = ("nq-open", "hotpotqa", "c3", "online-shopping", "qmsum")
    buckets: tuple[int, ...] = BUCKETS
    n: int = 1
    sanity_n: int = 12
    sanity_bucket: int = 300  # nq-open built for a 300-word bucket holds the gold passage alone
    loss_edges: tuple[int, ...] = (0, 1024, 2048, 4096, 8192, 12288, 16384)
    methods: tuple[str, ...] = METHODS
    factor: float = 2.0
    generations_per_group: int = 1

    def __post_init__(self) -> None:
        for method in self.methods:
            _check_rope(method, self.factor)
        if "none" not in self.methods:
            raise ValueError("methods: needs 'none' (plain RoPE, the baseline every method is compared with)")

    @classmethod
    def quick(cls) -> M4leRopeScalingConfig:
        """The small preset, the same steps: the long-context grid is one nq-open instance at the 1k bucket
        (enough to run every method through generation, scoring and normalising), the sanity check six
        one-passage instances per variant, and the next-token loss the first 1,024 tokens (inside the trained
        context: it shows each scaled method's cost there, not its behaviour past it)."""
        return replace(cls(), tasks=("nq-open",), buckets=(1000,), n=1, sanity_n=6,
                       loss_edges=(0, 256, 512, 1024), generations_per_group=1)
