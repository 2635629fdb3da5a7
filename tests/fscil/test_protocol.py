"""Session plans: the official split files, generated plans, and clear errors on bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kernelkit.fscil.data import read_mini_imagenet_csv
from kernelkit.fscil.protocol import (
    OFFICIAL_SETTINGS,
    SplitFileError,
    generate_plan,
    plan_from_index_files,
    plan_from_path_files,
    stratified_rows,
)
from tests.conftest import SHARED_DATA, needs_data
from tests.fscil._cifar import cifar_labels_from_splits

SPLITS = (SHARED_DATA / "fscil_index_list") if SHARED_DATA else Path("missing")


@needs_data("fscil_index_list/cifar100/session_9.txt")
def test_cifar100_official_split_files() -> None:
    split = SPLITS / "cifar100"
    train_labels = cifar_labels_from_splits(split)
    test_labels = np.repeat(np.arange(100), 100)
    plan = plan_from_index_files(split, train_labels, test_labels, name="cifar100")
    cfg = OFFICIAL_SETTINGS["cifar100"]
    assert len(plan.sessions) == cfg["num_sessions"] == 9
    assert plan.base_classes == tuple(range(60))
    assert len(plan.sessions[0].train_indices) == 30_000
    for t in range(1, 9):
        s = plan.sessions[t]
        assert s.classes == tuple(range(60 + 5 * (t - 1), 65 + 5 * (t - 1)))
        assert len(s.train_indices) == 25
        assert plan.seen_classes(t) == list(range(60 + 5 * t))
    for t in range(9):
        assert len(plan.test_indices(t)) == 6000 + 500 * t
    # the first rows of session_2.txt as the spec quotes them
    assert plan.sessions[1].train_indices[:5].tolist() == [29774, 33344, 4815, 6772, 48317]


@needs_data("fscil_index_list/mini_imagenet/train.csv")
def test_mini_imagenet_official_split_files() -> None:
    split = SPLITS / "mini_imagenet"
    names, labels, wnids = read_mini_imagenet_csv(split / "train.csv")
    _, test_labels, test_wnids = read_mini_imagenet_csv(split / "test.csv")
    assert len(names) == 50_000 and len(test_labels) == 10_000 and wnids == test_wnids
    plan = plan_from_path_files(split, names, labels, test_labels, name="mini_imagenet", match="name")
    assert plan.base_classes == tuple(range(60))
    assert len(plan.sessions[0].train_indices) == 30_000
    for t in range(1, 9):
        assert plan.sessions[t].classes == tuple(range(60 + 5 * (t - 1), 65 + 5 * (t - 1)))
        assert len(plan.test_indices(t)) == 6000 + 500 * t


@needs_data("fscil_index_list/cub200/session_11.txt")
def test_cub200_official_split_files() -> None:
    split = SPLITS / "cub200"
    lines = [ln for p in sorted(split.glob("session_*.txt")) for ln in p.read_text().split()]
    # a train list made from the split files themselves plus unlisted images of base classes
    paths = sorted(set(lines)) + ["CUB_200_2011/images/001.Black_footed_Albatross/extra.jpg"]
    labels = np.asarray([int(p.split("/")[-2].split(".")[0]) - 1 for p in paths])
    test_labels = np.repeat(np.arange(200), 3)
    plan = plan_from_path_files(split, paths, labels, test_labels, name="cub200", match="suffix")
    assert len(plan.sessions) == OFFICIAL_SETTINGS["cub200"]["num_sessions"] == 11
    assert plan.base_classes == tuple(range(100))
    assert len(plan.sessions[0].train_indices) == 3001  # every base training image, listed or not
    for t in range(1, 11):
        assert plan.sessions[t].classes == tuple(range(100 + 10 * (t - 1), 110 + 10 * (t - 1)))
        assert len(plan.sessions[t].train_indices) == 50
        assert len(plan.test_indices(t)) == 3 * (100 + 10 * t)


def _write_splits(folder: Path, sessions: list[list[int]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for t, rows in enumerate(sessions, start=1):
        (folder / f"session_{t}.txt").write_text("\n".join(map(str, rows)) + "\n")
    return folder


def test_index_outside_dataset_is_reported(tmp_path: Path) -> None:
    labels = np.repeat(np.arange(4), 10)
    split = _write_splits(tmp_path / "s", [list(range(20)), [20, 21, 22, 23, 24, 30, 31, 32, 33, 400]])
    with pytest.raises(SplitFileError, match=r"session_2\.txt:10: index 400 is outside the train set \(0\.\.39\)"):
        plan_from_index_files(split, labels, labels, name="toy")


def test_class_with_too_few_shots_is_reported(tmp_path: Path) -> None:
    labels = np.repeat(np.arange(4), 10)
    split = _write_splits(tmp_path / "s", [list(range(20)), [20, 21, 22, 23, 24, 30, 31, 32, 33]])
    with pytest.raises(SplitFileError, match="class 3 has 4 shots, expected 5"):
        plan_from_index_files(split, labels, labels, name="toy")
    with pytest.raises(ValueError, match="class 3 has 4 training samples, fewer than shot=5"):
        generate_plan(np.concatenate([np.repeat(np.arange(3), 10), [3, 3, 3, 3]]), labels, num_base=2, way=2,
                      shot=5, num_sessions=2, seed=0, base_classes=[0, 1], new_classes=[2, 3])


def test_malformed_split_folders(tmp_path: Path) -> None:
    labels = np.repeat(np.arange(4), 10)
    split = _write_splits(tmp_path / "gap", [list(range(20))])
    (split / "session_3.txt").write_text("25\n")
    with pytest.raises(SplitFileError, match="without gaps"):
        plan_from_index_files(split, labels, labels)
    bad = _write_splits(tmp_path / "text", [["0", "1", "abc"]])  # type: ignore[list-item]
    with pytest.raises(SplitFileError, match=r"session_1\.txt:3: expected an integer"):
        plan_from_index_files(bad, labels, labels)
    with pytest.raises(SplitFileError, match="does not exist"):
        plan_from_index_files(tmp_path / "nowhere", labels, labels)
    paths = [f"x/{i}.jpg" for i in range(40)]
    p = tmp_path / "paths"
    p.mkdir()
    (p / "session_1.txt").write_text("a/b/missing.jpg\n")
    with pytest.raises(SplitFileError, match="missing.jpg' is not in the train set"):
        plan_from_path_files(p, paths, labels, labels, name="toy")


def test_generated_plan_is_reproducible_and_complete() -> None:
    rng = np.random.default_rng(0)
    train = rng.permutation(np.repeat(np.arange(20), 12))
    test = np.repeat(np.arange(20), 3)
    a = generate_plan(train, test, num_base=8, way=3, shot=5, num_sessions=5, seed=7)
    b = generate_plan(train, test, num_base=8, way=3, shot=5, num_sessions=5, seed=7)
    c = generate_plan(train, test, num_base=8, way=3, shot=5, num_sessions=5, seed=8)
    assert [s.classes for s in a.sessions] == [s.classes for s in b.sessions]
    assert all(np.array_equal(x.train_indices, y.train_indices) for x, y in zip(a.sessions, b.sessions, strict=True))
    assert [s.classes for s in a.sessions] != [s.classes for s in c.sessions]
    seen: set[int] = set()
    for s in a.sessions:
        assert not seen & set(s.classes)
        seen |= set(s.classes)
        assert set(train[s.train_indices]) == set(s.classes)
        if s.index:
            assert len(s.train_indices) == 15 and len(s.classes) == 3
        # the test set of session t holds every test row of every class seen so far, and nothing else
        assert set(a.test_indices(s.index)) == {i for i, y in enumerate(test) if y in seen}
    assert len(a.sessions[0].train_indices) == 8 * 12
    with pytest.raises(ValueError, match="need 12 new classes"):
        generate_plan(train, test, num_base=10, way=3, shot=5, num_sessions=5, seed=0)


def test_validation_rows_leave_the_base_session() -> None:
    train = np.repeat(np.arange(6), 10)
    plan = generate_plan(train, train, num_base=4, way=2, shot=5, num_sessions=2, seed=0)
    val = stratified_rows(train, plan.sessions[0].train_indices, 0.2, seed=0)
    assert len(val) == 8 and set(train[val]) == set(plan.base_classes)
    kept = plan.without_base_rows(val).sessions[0].train_indices
    assert len(kept) == 32 and not set(kept) & set(val)
