"""FSCIL session plans: which training rows each session may use and which test rows it is scored on.

A plan is built from the official CEC/FACT/TEEN split files (``session_1.txt`` ... ``session_N.txt``:
CIFAR-100 row indices into the train set, miniImageNet / CUB-200 relative image paths) or generated
reproducibly from any labelled dataset with a seed. Sessions are numbered 0 (base) ... N; the test
set of session t holds every test row whose class was seen in sessions 0..t.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The official benchmark settings (TOPIC splits reused by CEC, FACT, TEEN).
OFFICIAL_SETTINGS: dict[str, dict[str, int]] = {
    "cifar100": {"num_base": 60, "way": 5, "shot": 5, "num_sessions": 9},
    "mini_imagenet": {"num_base": 60, "way": 5, "shot": 5, "num_sessions": 9},
    "cub200": {"num_base": 100, "way": 10, "shot": 5, "num_sessions": 11},
}


class SplitFileError(ValueError):
    """A split file is missing, malformed, or does not fit the dataset it indexes."""


@dataclass(frozen=True)
class Session:
    """One session: its new classes (in order) and the training rows it may use."""

    index: int
    classes: tuple[int, ...]
    train_indices: np.ndarray


@dataclass
class SessionPlan:
    """All sessions of an FSCIL run plus the test labels used to build each session's test set."""

    name: str
    sessions: list[Session]
    test_labels: np.ndarray
    shot: int
    way: int

    @property
    def base_classes(self) -> tuple[int, ...]:
        return self.sessions[0].classes

    @property
    def num_base(self) -> int:
        return len(self.sessions[0].classes)

    def seen_classes(self, t: int) -> list[int]:
        """Classes seen in sessions 0..t, base classes first, then in order of arrival."""
        return [c for s in self.sessions[: t + 1] for c in s.classes]

    def test_indices(self, t: int) -> np.ndarray:
        """Rows of the test set whose label was seen by session ``t``."""
        return np.flatnonzero(np.isin(self.test_labels, np.asarray(self.seen_classes(t))))

    def without_base_rows(self, rows: np.ndarray | None) -> SessionPlan:
        """The same plan with ``rows`` (e.g. a validation split) removed from the base session's training rows."""
        if rows is None or len(rows) == 0:
            return self
        base = self.sessions[0]
        kept = base.train_indices[~np.isin(base.train_indices, rows)]
        return SessionPlan(self.name, [Session(0, base.classes, kept), *self.sessions[1:]], self.test_labels,
                           self.shot, self.way)

    def summary(self) -> list[dict[str, int]]:
        return [{"session": s.index, "new_classes": len(s.classes), "train_rows": len(s.train_indices),
                 "seen_classes": len(self.seen_classes(s.index)), "test_rows": len(self.test_indices(s.index))}
                for s in self.sessions]


def _session_number(path: Path) -> int:
    m = re.fullmatch(r"session_(\d+)\.txt", path.name)
    return int(m.group(1)) if m else -1


def session_files(split_dir: str | Path) -> list[Path]:
    """``session_1.txt ... session_N.txt`` of a split folder, in session order (gaps are errors)."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise SplitFileError(f"split folder {split_dir} does not exist")
    files = sorted((p for p in split_dir.glob("session_*.txt") if _session_number(p) > 0), key=_session_number)
    if not files:
        raise SplitFileError(f"no session_<n>.txt files in {split_dir}")
    numbers = [_session_number(p) for p in files]
    if numbers != list(range(1, len(files) + 1)):
        raise SplitFileError(f"{split_dir}: session files must be numbered 1..N without gaps, found {numbers}")
    return files


def _group_by_class(rows: np.ndarray, train_labels: np.ndarray, where: str, shot: int | None) -> tuple[int, ...]:
    """Classes of ``rows`` in order of first appearance; each must have exactly ``shot`` rows."""
    labels = train_labels[rows]
    classes = tuple(int(c) for c in dict.fromkeys(labels.tolist()))
    if shot is not None:
        for c in classes:
            n = int((labels == c).sum())
            if n != shot:
                raise SplitFileError(f"{where}: class {c} has {n} shots, expected {shot}")
    return classes


def _validate_unique(sessions: list[Session]) -> None:
    seen: dict[int, int] = {}
    for s in sessions:
        for c in s.classes:
            if c in seen:
                raise SplitFileError(f"class {c} appears in session {seen[c]} and again in session {s.index}")
            seen[c] = s.index


def plan_from_rows(name: str, session_rows: Sequence[np.ndarray], train_labels: np.ndarray, test_labels: np.ndarray,
                   *, shot: int, base_uses_all: bool = True, where: Sequence[str] | None = None) -> SessionPlan:
    """Plan from per-session training rows (already resolved to train-set row indices).

    Session 0's classes are those of its rows; with ``base_uses_all`` it trains on every training
    row of those classes (what TEEN's loader does: it ignores ``session_1.txt`` beyond its classes).
    Incremental sessions must give exactly ``shot`` rows per class.
    """
    train_labels = np.asarray(train_labels)
    names = list(where) if where is not None else [f"session {i}" for i in range(len(session_rows))]
    sessions: list[Session] = []
    for t, rows in enumerate(session_rows):
        rows = np.asarray(rows, dtype=np.int64)
        classes = _group_by_class(rows, train_labels, names[t], None if t == 0 else shot)
        if t == 0:
            classes = tuple(sorted(classes))
            if base_uses_all:
                rows = np.flatnonzero(np.isin(train_labels, np.asarray(classes)))
        sessions.append(Session(t, classes, rows))
    _validate_unique(sessions)
    ways = {len(s.classes) for s in sessions[1:]}
    return SessionPlan(name, sessions, np.asarray(test_labels), shot, ways.pop() if len(ways) == 1 else 0)


def plan_from_index_files(split_dir: str | Path, train_labels: np.ndarray, test_labels: np.ndarray, *, shot: int = 5,
                          name: str = "cifar100", base_uses_all: bool = True) -> SessionPlan:
    """Plan from split files of integer row indices into the train set (the CIFAR-100 convention)."""
    files = session_files(split_dir)
    n = len(train_labels)
    session_rows = []
    for path in files:
        rows = []
        for lineno, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                idx = int(line)
            except ValueError:
                raise SplitFileError(f"{path}:{lineno}: expected an integer row index, got {line.strip()!r}") from None
            if not 0 <= idx < n:
                raise SplitFileError(f"{path}:{lineno}: index {idx} is outside the train set (0..{n - 1})")
            rows.append(idx)
        session_rows.append(np.asarray(rows, dtype=np.int64))
    return plan_from_rows(name, session_rows, train_labels, test_labels, shot=shot, base_uses_all=base_uses_all,
                          where=[str(p) for p in files])


def plan_from_path_files(split_dir: str | Path, train_paths: Sequence[str], train_labels: np.ndarray,
                         test_labels: np.ndarray, *, shot: int = 5, name: str, match: str = "name",
                         base_uses_all: bool = True) -> SessionPlan:
    """Plan from split files of relative image paths (miniImageNet, CUB-200).

    ``match="name"`` looks lines up by file name only (the miniImageNet loader keeps only the file
    name); ``match="suffix"`` by the path after the dataset folder (CUB: ``images/<class>/<file>``).
    """
    if match not in ("name", "suffix"):
        raise ValueError(f"match must be 'name' or 'suffix', got {match!r}")

    def key(p: str) -> str:
        p = p.replace("\\", "/")
        if match == "name":
            return p.rsplit("/", 1)[-1]
        parts = p.split("/")
        return "/".join(parts[-3:])

    lookup: dict[str, int] = {}
    for i, p in enumerate(train_paths):
        lookup.setdefault(key(p), i)
    files = session_files(split_dir)
    session_rows = []
    for path in files:
        rows = []
        for lineno, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            k = key(line.strip())
            if k not in lookup:
                raise SplitFileError(f"{path}:{lineno}: image {line.strip()!r} is not in the train set")
            rows.append(lookup[k])
        session_rows.append(np.asarray(rows, dtype=np.int64))
    return plan_from_rows(name, session_rows, train_labels, test_labels, shot=shot, base_uses_all=base_uses_all,
                          where=[str(p) for p in files])


def stratified_rows(labels: np.ndarray, rows: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded ``fraction`` of ``rows`` from every class (at least one per class): a validation split."""
    labels, rows = np.asarray(labels), np.asarray(rows, dtype=np.int64)
    rng = np.random.default_rng(seed)
    out = []
    for c in np.unique(labels[rows]):
        pool = rows[labels[rows] == c]
        out.append(rng.choice(pool, size=max(1, int(round(fraction * len(pool)))), replace=False))
    return np.sort(np.concatenate(out)) if out else np.zeros(0, dtype=np.int64)


def generate_plan(train_labels: np.ndarray, test_labels: np.ndarray, *, num_base: int, way: int, shot: int,
                  num_sessions: int, seed: int, base_classes: Sequence[int] | None = None,
                  new_classes: Sequence[int] | None = None, name: str = "generated") -> SessionPlan:
    """A reproducible plan for any labelled dataset: the same seed gives the same plan.

    Args:
        num_base: number of base classes (all their training rows are used in session 0).
        way, shot: classes per incremental session and training rows per new class.
        num_sessions: total number of sessions including the base session.
        seed: draws the class order (when not given) and each new class's ``shot`` rows.
        base_classes / new_classes: fix the candidate classes; default: a seeded permutation of
            every class in ``train_labels``, the first ``num_base`` being base.
    """
    train_labels = np.asarray(train_labels)
    rng = np.random.default_rng(seed)
    classes = np.unique(train_labels)
    if base_classes is None or new_classes is None:
        order = rng.permutation(classes).tolist()
        base_pool = list(base_classes) if base_classes is not None else order[:num_base]
        new_pool = list(new_classes) if new_classes is not None else [c for c in order if c not in set(base_pool)]
    else:
        base_pool, new_pool = list(base_classes), list(new_classes)
        new_pool = [new_pool[i] for i in rng.permutation(len(new_pool))]
    needed = way * (num_sessions - 1)
    if len(base_pool) < num_base:
        raise ValueError(f"need {num_base} base classes, only {len(base_pool)} available")
    if len(new_pool) < needed:
        raise ValueError(f"need {needed} new classes ({num_sessions - 1} sessions x {way} ways), "
                         f"only {len(new_pool)} available")
    base = sorted(int(c) for c in base_pool[:num_base])
    session_rows = [np.flatnonzero(np.isin(train_labels, np.asarray(base)))]
    for t in range(1, num_sessions):
        rows = []
        for c in new_pool[(t - 1) * way: t * way]:
            pool = np.flatnonzero(train_labels == c)
            if len(pool) < shot:
                raise ValueError(f"class {c} has {len(pool)} training samples, fewer than shot={shot}")
            rows.append(np.sort(rng.choice(pool, size=shot, replace=False)))
        session_rows.append(np.concatenate(rows))
    return plan_from_rows(name, session_rows, train_labels, test_labels, shot=shot, base_uses_all=False)
