"""NAB scoring (bench/nab.py) against cases worked by hand."""

from __future__ import annotations

import math

import pytest

from bench import nab

# The hand-worked series: 20 rows (timestamps 0, 60, ..., 1140), one window over rows 8..11.
#   probation = floor(0.15 x 20) = 3 rows (0..2): the detection at row 1 is ignored.
#   S(x) = 2 / (1 + e^(5x)) - 1;  S(-1) = 2 / (1 + e^-5) - 1 = 0.9866143 (the sweeper's maxTP).
#   TP at row 9: width = 4, position = -(11 - 9 + 1) / 4 = -0.75,
#       S(-0.75) = 2 / (1 + e^-3.75) - 1 = 2 / 1.0235177 - 1 = 0.9540453,  / 0.9866143 = 0.9669891.
#   The TP at row 10 is later, so worth less: the window keeps row 9's 0.9669891.
#   FP at row 14: 3 rows behind the window's last row, position = 3 / (4 - 1) = 1.0,
#       S(1) = 2 / (1 + e^5) - 1 = -0.9866143, x fp 0.11 = -0.1085276.
#   FP at row 5: no window before it, so a full -fp = -0.11.
#   raw (standard) = 0.9669891 - 0.1085276 - 0.11 = 0.7484615;  null = -1, perfect = +1,
#   normalised = 100 x (0.7484615 + 1) / 2 = 87.42308.
TIMES = [60.0 * i for i in range(20)]
WINDOW = [(480.0, 660.0)]  # rows 8..11
DETECTIONS = [1, 5, 9, 10, 14]


def test_windows_are_the_rows_inside_their_limits():
    assert nab.window_rows(TIMES, WINDOW) == [(8, 11)]
    assert nab.probation_rows(20) == 3
    assert nab.probation_rows(16_000) == 750  # the sweeper caps probation at 750 rows


def test_scaled_sigmoid_points():
    assert nab.scaled_sigmoid(-1.0) == pytest.approx(0.9866143, abs=1e-7)
    assert nab.scaled_sigmoid(0.0) == 0.0
    assert nab.scaled_sigmoid(-0.5) == pytest.approx(0.8482836, abs=1e-7)
    assert nab.scaled_sigmoid(3.5) == -1.0


def test_hand_worked_standard_profile():
    score = nab.score_series(20, nab.window_rows(TIMES, WINDOW), DETECTIONS, nab.PROFILES["standard"])
    assert score.raw == pytest.approx(0.7484615, abs=1e-6)
    assert (score.null, score.perfect) == (-1.0, 1.0)
    assert score.normalised == pytest.approx(87.42308, abs=1e-4)
    assert (score.windows, score.windows_detected, score.false_positive_rows) == (1, 1, 2)


def test_hand_worked_other_profiles():
    windows = nab.window_rows(TIMES, WINDOW)
    # reward_low_FP_rate doubles fp: raw = 0.9669891 - 0.2170551 - 0.22 = 0.5299339 -> 76.49670.
    low_fp = nab.score_series(20, windows, DETECTIONS, nab.PROFILES["reward_low_FP_rate"])
    assert low_fp.normalised == pytest.approx(76.49670, abs=1e-4)
    # reward_low_FN_rate: same raw as standard, null = -2: 100 x (0.7484615 + 2) / 3 = 91.61538.
    low_fn = nab.score_series(20, windows, DETECTIONS, nab.PROFILES["reward_low_FN_rate"])
    assert low_fn.normalised == pytest.approx(91.61538, abs=1e-4)


def test_null_and_perfect_detectors_score_0_and_100():
    windows = nab.window_rows(TIMES, WINDOW)
    for profile in nab.PROFILES.values():
        assert nab.score_series(20, windows, [], profile).normalised == 0.0
        assert nab.score_series(20, windows, [8], profile).normalised == pytest.approx(100.0)


def test_a_window_inside_probation_does_not_count_but_still_anchors_false_positives():
    times = [60.0 * i for i in range(100)]  # probation = 15 rows
    windows = nab.window_rows(times, [(60.0, 300.0), (3000.0, 3300.0)])  # rows 1..5 and 50..55
    score = nab.score_series(100, windows, [6, 20], nab.PROFILES["standard"])
    assert score.windows == 1 and score.windows_detected == 0
    # Row 6 is in probation; row 20 is 15 rows behind the first window (width 5): S(15 / 4) = -1.
    assert score.raw == pytest.approx(-1.0 - 0.11)


def test_corpus_sums_before_normalising():
    windows = nab.window_rows(TIMES, WINDOW)
    good = nab.score_series(20, windows, [8], nab.PROFILES["standard"])
    missed = nab.score_series(20, windows, [], nab.PROFILES["standard"])
    assert nab.corpus_score([good, missed]) == pytest.approx(50.0)
    assert not math.isclose(nab.corpus_score([good, missed]), 0.0)
