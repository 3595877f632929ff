from edgekd.device.noise import paired_speedup


def test_paired_speedup_is_the_median_of_each_rounds_ratio_with_the_pooled_ratio_beside_it():
    # Two machine states: rounds 1-2 slow, round 3 fast; the pooled medians fall in different states.
    slow = {"p50_ms": 3.0, "round_p50_ms": [3.2, 3.1, 2.4]}
    fast = {"p50_ms": 2.0, "round_p50_ms": [2.0, 2.0, 1.2]}
    gain = paired_speedup(slow, fast)
    assert gain["rounds"] == [1.6, 1.55, 2.0]
    assert gain["paired_median"] == 1.6
    assert gain["pooled_p50"] == 1.5


def test_compare_speed_is_faster_only_outside_the_band_and_in_most_rounds():
    from edgekd.device.noise import FASTER, SLOWER, WITHIN_NOISE, compare_speed

    base = {"p50_ms": 1.0, "round_p50_ms": [1.0] * 5}
    faster = compare_speed({"p50_ms": 0.8, "round_p50_ms": [0.8] * 5}, base)
    assert (faster.outcome, faster.speedup, faster.faster_in, faster.rounds) == (FASTER, 1.25, 5, 5)
    assert compare_speed(base, {"p50_ms": 0.8, "round_p50_ms": [0.8] * 5}).outcome == SLOWER
    assert compare_speed({"p50_ms": 0.99, "round_p50_ms": [0.99] * 5}, base).outcome == WITHIN_NOISE  # inside 3%
    mixed = compare_speed({"p50_ms": 0.8, "round_p50_ms": [0.7, 0.7, 0.7, 1.1, 1.2]}, base)  # 3 of 5 rounds
    assert mixed.outcome == WITHIN_NOISE and mixed.faster_in == 3
    assert compare_speed({"p50_ms": 0.5}, {"p50_ms": 1.0}).rounds == 0  # no rounds: p50 ratio and band alone
    assert compare_speed(None, base) is None


def test_compare_rates_reads_throughputs_in_pairs():
    """Issue 32 item 12: 1520.0 vs 1523.0 tokens/s is 0.2%: within noise, not 'slower'."""
    from edgekd.device.noise import SLOWER, WITHIN_NOISE, compare_rates

    assert compare_rates([1520.0, 1518.0, 1530.0, 1519.0, 1521.0], [1523.0, 1522.0, 1520.0, 1525.0, 1523.0]).outcome == WITHIN_NOISE
    assert compare_rates([1000.0] * 5, [1500.0] * 5).outcome == SLOWER
    assert compare_rates([1.0], [1.0, 2.0]) is None
