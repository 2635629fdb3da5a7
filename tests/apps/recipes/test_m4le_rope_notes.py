"""The M4LE recipe's notes are computed from the numbers in their tables."""

from __future__ import annotations

from kernelkit.apps.recipes.m4le_rope import position_loss_note


def _rows(losses: list[float], edges: list[int]) -> list[dict]:
    return [{"start": a, "end": b, "loss": v} for a, b, v in zip(edges[:-1], edges[1:], losses, strict=True)]


def test_short_measurement_says_it_shows_nothing_past_the_trained_context():
    edges = [0, 512, 1024, 2048]
    note = position_loss_note({"plain": _rows([3.0, 2.0, 1.5], edges), "yarn x2": _rows([3.1, 2.1, 1.6], edges)},
                              trained=8192)
    assert "yarn x2 +0.100" in note
    assert "Only positions up to 2048 were measured" in note and "Past it" not in note
    assert "flat" not in note


def test_past_the_trained_context_names_the_lowest_loss():
    edges = [0, 4096, 8192, 16384]
    note = position_loss_note({"plain": _rows([2.0, 2.0, 6.0], edges), "ntk x2": _rows([2.1, 2.1, 2.5], edges),
                               "yarn x2": _rows([2.05, 2.0, 2.4], edges)}, trained=8192)
    assert "Past it, mean loss: plain 6.000, ntk x2 2.500, yarn x2 2.400; lowest: yarn x2." in note
    assert "ntk x2 +0.100" in note and "yarn x2 +0.025" in note


def _scores(values: dict[tuple[str, int], float]) -> list[dict]:
    return [{"model": m, "task": "nq-open", "bucket": b, "n": 1, "score": v, "normalised": float("nan")}
            for (m, b), v in values.items()]


def test_all_zero_scores_say_what_the_table_cannot_show():
    from kernelkit.apps.recipes.m4le_rope import scores_note

    table = _scores({("plain", 1000): 0.0, ("yarn x2", 1000): 0.0})
    note = scores_note(table, sanity_best=0.25)
    assert note.startswith("Every score is 0 (2 answers over 2 methods at buckets 1000 words)")
    assert "cannot rank the RoPE methods" in note and "scored up to 0.25" in note and "none of these" in note
    assert "0 on the one-passage sanity check too" in scores_note(table, sanity_best=0.0)


def test_nonzero_scores_get_no_all_zero_note():
    from kernelkit.apps.recipes.m4le_rope import scores_note

    note = scores_note(_scores({("plain", 1000): 0.0, ("yarn x2", 1000): 0.5}), sanity_best=0.25)
    assert "Every score is 0" not in note and note.startswith("nan:")  # the normalised column is nan here
    table = [{**r, "normalised": 1.0} for r in _scores({("plain", 1000): 0.5})]
    assert scores_note(table, sanity_best=None) == ""


def test_summary_note_reports_zero_means_and_a_missing_slope():
    from kernelkit.apps.recipes.m4le_rope import summary_note

    flat = [{"method": "plain", "1k": 0.0, "mean": 0.0, "slope per bucket": float("nan")}]
    note = summary_note(flat, trained=8192)
    assert "Every mean is 0" in note and "one bucket only" in note and "8192-token" in note
    moving = [{"method": "plain", "1k": 0.5, "2k": 0.25, "mean": 0.375, "slope per bucket": -0.25}]
    assert "Every mean is 0" not in summary_note(moving, 8192) and "nan" not in summary_note(moving, 8192)


def test_sanity_note_is_computed_from_the_rows():
    from kernelkit.apps.recipes.m4le_rope import sanity_note

    copies = "answers copying the demonstration (1889)"
    rows = [{"variant": "raw", "instances": 4, "accuracy": 0.0, copies: 2},
            {"variant": "chat", "instances": 4, "accuracy": 0.25, copies: 0}]
    note = sanity_note(rows)
    assert "0.00 (raw), 0.25 (chat); best: chat." in note and "2 of 8 answers copy" in note
    assert "Every variant scores 0" not in note
    zero = sanity_note([{**r, "accuracy": 0.0, copies: 0} for r in rows])
    assert "Every variant scores 0" in zero and "copy the demonstration's" not in zero


def test_a_generation_grid_with_only_errors_is_a_failure():
    from kernelkit.apps.recipes.m4le_rope import all_failed_message

    row = {"generated": 0, "resumed": 0, "errors": 2}
    assert all_failed_message([row, {**row}]) == "every generation failed: 4 errors, 0 answers over 2 methods"
    assert all_failed_message([row, {**row, "generated": 1}]) is None  # partial failures are counted, not fatal
    assert all_failed_message([{**row, "errors": 0}]) is None


def test_quick_scope_is_computed_from_both_presets():
    from kernelkit.apps.configs.m4le import M4leRopeScalingConfig
    from kernelkit.apps.recipes.m4le_rope import quick_scope

    line = quick_scope(M4leRopeScalingConfig.quick(), M4leRopeScalingConfig())
    assert line.startswith("Quick preset: 1 long instance(s) per method (nq-open; buckets 1000)")
    assert "1 per task and bucket for 5 tasks at 5 buckets" in line
    assert "positions up to 1024 (full run: 16384)" in line


def test_published_leaderboard_rows_are_consistent_and_the_difference_line_is_generated():
    from kernelkit.apps.configs.m4le import M4leRopeScalingConfig
    from kernelkit.apps.recipes.m4le_rope import published_rows, setting_difference
    from kernelkit.longctx import scoring

    rows = published_rows()
    assert [r["model"] for r in rows][0] == "GPT-3.5-Turbo-16K" and rows[0]["1k"] == 0.50
    for r in rows:  # the leaderboard's avg and slope follow from its five rounded bucket scores
        scores = [r[b] for b in ("1k", "2k", "4k", "6k", "8k")]
        assert abs(sum(scores) / 5 - r["avg"]) <= 0.006
        assert abs(scoring.slope(scores) - r["slope per bucket"]) <= 0.0006
    cfg = M4leRopeScalingConfig.quick()
    line = setting_difference(cfg, 8192, [{"method": "plain", "mean": 0.25}, {"method": "yarn x2", "mean": 0.5}])
    assert "8192" in line and "plain 0.25" in line and "yarn x2 0.5" in line
    assert ", ".join(cfg.tasks) in line and "without fine-tuning" in line
