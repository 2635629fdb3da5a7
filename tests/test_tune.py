"""kernelkit.tune: the mode switch, the one cache file, and the measurement logic (on fake clocks)."""

from __future__ import annotations

import json
import threading

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from kernelkit import tune


@pytest.fixture(autouse=True)
def _clean_tables():
    tune.clear()
    yield
    tune.clear()


def _boom(*args, **kwargs):
    raise AssertionError("measured although tuning is off or the choice is cached")


def _paths(calls: list[str]):
    def make(names):
        return {n: (lambda n=n: calls.append(n)) for n in names}
    return make


# ---- mode ---------------------------------------------------------------------------------------


def test_off_by_default_and_scoped_by_enabled(tmp_path) -> None:
    assert tune.is_enabled() is False  # the test environment does not set KERNELKIT_TUNE
    with tune.enabled(cache=tmp_path / "a.json") as path:
        assert tune.is_enabled() and path == tmp_path / "a.json" == tune.cache_path()
        with tune.enabled(False):
            assert not tune.is_enabled() and tune.cache_path() == path  # the inner block keeps the file
        assert tune.is_enabled()
    assert not tune.is_enabled()
    with pytest.raises(RuntimeError), tune.enabled():
        raise RuntimeError("boom")
    assert not tune.is_enabled()


def test_enabled_is_local_to_its_thread(tmp_path) -> None:
    seen: list[bool] = []
    with tune.enabled(cache=tmp_path / "t.json"):
        worker = threading.Thread(target=lambda: seen.append(tune.is_enabled()))
        worker.start()
        worker.join()
    assert seen == [False]


def test_environment_variable(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("KERNELKIT_CACHE", str(tmp_path))
    assert tune.cache_path() == tmp_path / "tune.json"
    for value, on in (("1", True), ("true", True), ("0", False), ("", False), ("off", False)):
        monkeypatch.setenv(tune.TUNE_ENV, value)
        assert tune.is_enabled() is on
    monkeypatch.setenv(tune.TUNE_ENV, "1")
    with tune.enabled(False):
        assert not tune.is_enabled()  # the explicit block wins over the environment
    monkeypatch.setenv(tune.TUNE_ENV, "fastest")
    with pytest.raises(ValueError, match="KERNELKIT_TUNE"):
        tune.is_enabled()


# ---- choose and the cache -------------------------------------------------------------------------


def test_off_returns_the_heuristic_without_touching_disk(tmp_path) -> None:
    cache = tmp_path / "tune.json"
    with tune.enabled(False, cache=cache):
        assert tune.choose("op", "k", heuristic="b", candidates=["a", "b"], paths=_boom) == "b"
    assert not cache.exists()


def test_measures_once_then_uses_the_cache_in_this_and_the_next_process(tmp_path, monkeypatch) -> None:
    cache = tmp_path / "sub" / "tune.json"
    calls: list[str] = []
    with tune.enabled(cache=cache):
        first = tune.choose("op", "k1", heuristic="a", candidates=["a", "b"], paths=_paths(calls))
        assert first in ("a", "b") and set(calls) == {"a", "b"}
        n = len(calls)
        assert tune.choose("op", "k1", heuristic="a", candidates=["a", "b"], paths=_boom) == first
        assert len(calls) == n
    data = json.loads(cache.read_text())
    assert data["version"] == tune.CACHE_VERSION
    (key, entry), = data["entries"].items()
    assert key == f"op|{tune.platform_key('cpu')}|k1" and entry["choice"] == first and set(entry["ms"]) == {"a", "b"}
    assert f"torch{torch.__version__}" in key and f"threads{torch.get_num_threads()}" in key
    tune.clear()  # a new process
    monkeypatch.setattr(tune, "measure", _boom)
    with tune.enabled(cache=cache):
        assert tune.choose("op", "k1", heuristic="a", candidates=["a", "b"], paths=_boom) == first
        assert tune.lookup("op", "k1")["choice"] == first
        assert tune.lookup("op", "k2") is None
        with FlopCounterMode(display=False):  # timing means nothing here
            assert tune.choose("op", "k2", heuristic="b", candidates=["a", "b"], paths=_boom) == "b"


def test_a_cached_choice_outside_the_candidates_is_measured_again(tmp_path) -> None:
    calls: list[str] = []
    with tune.enabled(cache=tmp_path / "tune.json"):
        tune.record("op", "k", "cpu", "c", {"a": 1.0, "c": 0.5})
        assert tune.choose("op", "k", heuristic="a", candidates=["a", "b"], paths=_paths(calls)) in ("a", "b")
        assert set(calls) == {"a", "b"}


def test_record_merges_with_entries_other_processes_wrote(tmp_path) -> None:
    cache = tmp_path / "tune.json"
    with tune.enabled(cache=cache):
        tune.record("op", "mine", "cpu", "a", {"a": 1e-3})
        other = json.loads(cache.read_text())
        other["entries"]["op|elsewhere|theirs"] = {"choice": "b", "ms": {"b": 1.0}}
        cache.write_text(json.dumps(other))
        tune.record("op", "mine2", "cpu", "a", {"a": 1e-3})
    assert len(json.loads(cache.read_text())["entries"]) == 3


def test_corrupt_cache_is_ignored_with_a_warning_and_replaced(tmp_path) -> None:
    cache = tmp_path / "tune.json"
    cache.write_text("{ not json")
    with tune.enabled(cache=cache):
        with pytest.warns(RuntimeWarning, match="unreadable"):
            assert tune.lookup("op", "k") is None
        tune.record("op", "k", "cpu", "a", {"a": 1e-3})
    assert len(json.loads(cache.read_text())["entries"]) == 1
    cache.write_text('["a list"]')
    tune.clear()
    with tune.enabled(cache=cache), pytest.warns(RuntimeWarning, match="layout"):
        assert tune.entries() == {}


def test_unwritable_cache_keeps_choices_in_memory(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with tune.enabled(cache=blocker / "tune.json"):  # a file where the folder should be
        with pytest.warns(RuntimeWarning, match="not writable"):
            tune.record("op", "k", "cpu", "a", {"a": 1e-3})
        assert tune.lookup("op", "k")["choice"] == "a"


def test_clear_disk_deletes_the_file(tmp_path) -> None:
    cache = tmp_path / "tune.json"
    with tune.enabled(cache=cache):
        tune.record("op", "k", "cpu", "a", {"a": 1e-3})
        assert cache.exists()
        tune.clear(disk=True)
        assert not cache.exists() and tune.entries() == {}


def test_platform_key_names_torch_device_and_threads() -> None:
    key = tune.platform_key("cpu")
    torch_part, device_part, threads_part = key.split("|")
    assert torch_part == f"torch{torch.__version__}" and device_part.startswith("cpu:")
    assert threads_part == f"threads{torch.get_num_threads()}"


# ---- the measurement --------------------------------------------------------------------------------


def test_switch_guard_keeps_the_baseline_unless_clearly_faster() -> None:
    assert tune.pick({"split": 1.0, "padded": 0.5}, {"split": 1.0, "padded": 2.0}, "split") == "padded"
    # a near tie (4% faster) stays with the baseline
    assert tune.pick({"split": 1.0, "padded": 0.96}, {"split": 1.0, "padded": 1.04}, "split") == "split"
    # faster in the medians but not in the paired per-round ratios (load drifted): the baseline
    assert tune.pick({"split": 1.0, "padded": 0.8}, {"split": 1.0, "padded": 1.01}, "split") == "split"
    assert tune.pick({"split": 1.0, "padded": 1.5}, {"split": 1.0, "padded": 0.6}, "split") == "split"


class _FakeClock:
    """A clock that advances only when a fake path runs: deterministic timings for the measurement logic."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls: dict[str, int] = {}

    def __call__(self) -> float:
        return self.now

    def path(self, name: str, cost: float, first_cost: float | None = None):
        def run() -> None:
            n = self.calls.get(name, 0)
            self.calls[name] = n + 1
            self.now += first_cost if (n == 0 and first_cost is not None) else cost
        return run


def test_measurement_interleaves_and_drops_hopeless_paths() -> None:
    clock = _FakeClock()
    syncs = [0]

    def sync() -> None:
        syncs[0] += 1

    fns = {"split": clock.path("split", 1e-3, first_cost=5e-3), "padded": clock.path("padded", 0.5e-3),
           "slow": clock.path("slow", 5e-3), "awful": clock.path("awful", 1.0)}
    times, ratios = tune.measure(fns, sync=sync, clocks=(clock,))
    assert times["split"] == pytest.approx(1e-3) and times["padded"] == pytest.approx(0.5e-3)
    assert ratios["padded"] == pytest.approx(2.0)
    assert clock.calls["awful"] == clock.calls["slow"] == 2  # warm-up + one timed call, then dropped
    assert "slow" not in ratios and "awful" not in ratios and times["slow"] == pytest.approx(5e-3)
    assert clock.calls["padded"] > 5 and clock.calls["split"] > 5
    assert syncs[0] >= 2 * (sum(clock.calls.values()) // 25)  # every timed region is synchronized
    assert tune.pick(times, ratios, "split") == "padded"


def test_a_path_must_win_on_every_clock() -> None:
    wall, cpu = _FakeClock(), _FakeClock()

    def both(name: str, wall_cost: float, cpu_cost: float):
        w, c = wall.path(name, wall_cost), cpu.path(name, cpu_cost)

        def run() -> None:
            w()
            c()
        return run
    # faster on the wall clock only (e.g. the baseline's rounds were preempted), not in CPU time
    fns = {"split": both("split", 2e-3, 1e-3), "padded": both("padded", 1e-3, 1e-3)}
    times, ratios = tune.measure(fns, clocks=(wall, cpu))
    assert times["padded"] == pytest.approx(1e-3) and ratios["padded"] == pytest.approx(1.0)
    assert tune.pick(times, ratios, "split") == "split"


def test_clocks_per_device() -> None:
    import time

    assert tune.default_clocks("cuda") == (time.perf_counter,)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert tune.default_clocks("cpu") == (time.process_time,)
        torch.set_num_threads(2)
        assert tune.default_clocks("cpu") == (time.perf_counter, time.process_time)
    finally:
        torch.set_num_threads(old)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_choice_synchronizes_and_names_the_gpu(tmp_path, monkeypatch) -> None:
    synced: list[object] = []
    real = torch.cuda.synchronize
    monkeypatch.setattr(torch.cuda, "synchronize", lambda d=None: (synced.append(d), real(d)))
    x = torch.randn(256, 256, device="cuda")
    with tune.enabled(cache=tmp_path / "tune.json"):
        tune.choose("op", "mm", heuristic="a", candidates=["a", "b"], device=x.device,
                    paths=lambda names: {n: (lambda: x @ x) for n in names})
    assert synced
    (key,) = tune.entries()
    assert f"|cuda:{torch.cuda.get_device_name(x.device)}|" in key


def test_the_key_is_not_built_when_tuning_is_off(tmp_path):
    """The fixed rule costs nothing per call: a callable key is evaluated only when tuning is on."""
    built = []

    def key() -> str:
        built.append(1)
        return "k"

    def paths(names):
        return {n: (lambda: None) for n in names}

    with tune.enabled(False):
        assert tune.choose("demo", key, heuristic="a", candidates=["a", "b"], paths=paths) == "a"
    assert built == []
    with tune.enabled(cache=tmp_path / "tune.json"):
        tune.choose("demo", key, heuristic="a", candidates=["a", "b"], paths=paths)
    assert built == [1]
