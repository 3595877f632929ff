from edgekd.device.noise import paired_speedup


def test_paired_speedup_is_the_median_of_each_rounds_ratio_with_the_pooled_ratio_beside_it():
    # Two machine states: rounds 1-2 slow, round 3 fast; the pooled medians fall in different states.
    slow = {"p50_ms": 3.0, "round_p50_ms": [3.2, 3.1, 2.4]}
    fast = {"p50_ms": 2.0, "round_p50_ms": [2.0, 2.0, 1.2]}
    gain = paired_speedup(slow, fast)
    assert gain["rounds"] == [1.6, 1.55, 2.0]
    assert gain["paired_median"] == 1.6
    assert gain["pooled_p50"] == 1.5
