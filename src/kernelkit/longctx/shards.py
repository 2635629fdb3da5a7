"""Splitting one M4LE run over processes, GPUs or servers, and checking that the parts add up.

``--shard i/n`` takes a deterministic, disjoint part of the selected records: the selection is ordered by
a hash of each record's identity (task, bucket, sample id) and dealt round-robin, so the ``n`` parts are
within one record of the same size, each holds a mix of tasks and lengths, and their union is exactly the
selection. Every shard writes its own results file and, next to it, a plan (``<stem>.shard.json``): which
shard it is, a digest of the whole selection and the keys it is to answer. Merging the results files of a
run reads the plans and says which shards, or which answers of a shard, are missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kernelkit.longctx.records import Record


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"expected i/n with 0 <= i < n, got {self.index}/{self.count}")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"i/n"`` (e.g. ``"0/4"``) as a shard; anything else raises :class:`ValueError`."""
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not m:
            raise ValueError(f"expected i/n with 0 <= i < n (e.g. 0/4), got {text!r}")
        return cls(int(m.group(1)), int(m.group(2)))

    @property
    def name(self) -> str:
        return f"shard-{self.index}-of-{self.count}"

    def results_name(self) -> str:
        """The default results file name of this shard in its run directory."""
        return f"results.{self.name}.jsonl"


def record_identity(rec: Record, task: str | None = None) -> str:
    """``task|bucket|sample id`` of a record (``task``: for records without ``extras["task"]``)."""
    return f"{rec.extras.get('task', task) or ''}|{rec.length_bucket}|{rec.sample_id}"


def _order(identity: str) -> str:
    return hashlib.sha1(identity.encode("utf-8")).hexdigest()


def split(records: Sequence[Record], shard: Shard, task: str | None = None) -> list[Record]:
    """The records of ``shard``, in their input order: the selection sorted by the hash of each identity and
    dealt round-robin. Equal identities (one record listed twice) go to the same shard."""
    identities = sorted({record_identity(r, task) for r in records}, key=lambda s: (_order(s), s))
    mine = {ident for pos, ident in enumerate(identities) if pos % shard.count == shard.index}
    return [r for r in records if record_identity(r, task) in mine]


def selection_digest(records: Sequence[Record], task: str | None = None) -> str:
    """A digest of the whole selection: shards of one run share it."""
    blob = "\n".join(sorted({record_identity(r, task) for r in records}))
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:12]


@dataclass
class ShardPlan:
    """What a shard is to answer: written next to its results file before any answer."""

    index: int
    count: int
    selection: str  # selection_digest of the records all shards were given
    selected: int  # records in that selection
    keys: list[str] = field(default_factory=list)  # result keys of this shard

    @property
    def shard(self) -> Shard:
        return Shard(self.index, self.count)


def plan_path(results_path: str | os.PathLike[str]) -> Path:
    """The plan file next to a shard's results file: ``results.shard-0-of-4.jsonl`` ->
    ``results.shard-0-of-4.shard.json``."""
    path = Path(results_path)
    return path.with_name(path.stem + ".shard.json")


def write_plan(results_path: str | os.PathLike[str], plan: ShardPlan) -> Path:
    path = plan_path(results_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(plan)), encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_plan(results_path: str | os.PathLike[str]) -> ShardPlan | None:
    """The plan of a shard's results file, or None for a file that is not a shard (no readable plan)."""
    path = plan_path(results_path)
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return ShardPlan(int(data["index"]), int(data["count"]), str(data["selection"]), int(data["selected"]),
                         [str(k) for k in data.get("keys", [])])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def missing_parts(plans: dict[str, ShardPlan], keys: dict[str, set[str]]) -> list[str]:
    """Sentences naming what a merge of shard results lacks.

    ``plans`` maps each results file that is a shard to its plan, ``keys`` each file to the result keys it
    holds. Per run (shards sharing a selection digest and count): the shards no file was given for, and per
    given shard the planned keys without an answer (one shown).
    """
    runs: dict[tuple[str, int], dict[int, list[str]]] = {}
    for name, plan in plans.items():
        runs.setdefault((plan.selection, plan.count), {}).setdefault(plan.index, []).append(name)
    out = []
    if len(runs) > 1:
        out.append(f"the shard files come from {len(runs)} different runs (other records, filters or --shard n): "
                   + "; ".join(f"{len(v)} of {n} shards of selection {sel}" for (sel, n), v in sorted(runs.items())))
    for (sel, count), given in sorted(runs.items()):
        absent = [i for i in range(count) if i not in given]
        if absent:
            example = Shard(absent[0], count).results_name()
            out.append(f"shards {', '.join(map(str, absent))} of {count} missing (selection {sel}; e.g. "
                       f"{example}): their answers are not in this merge")
        for index, names in sorted(given.items()):
            planned = set().union(*(plans[n].keys for n in names))
            held = set().union(*(keys.get(n, set()) for n in names))
            lacking = sorted(planned - held)
            if lacking:
                out.append(f"shard {index} of {count} ({', '.join(names)}): {len(lacking)} of {len(planned)} "
                           f"answers missing, e.g. {lacking[0]}")
    return out
