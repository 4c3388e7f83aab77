"""The benchmarks' turns: floor and app alternate A B B A, and each side's turns add up."""

from __future__ import annotations

from bench.common import Timing, added_timings, interleaved


def test_turns_alternate_and_add_up():
    order = []

    def run(name: str, rate: int):
        def one(r: int) -> Timing:
            order.append((name, r))
            return Timing(latencies=[0.01] * rate, elapsed=1.0, ok=rate, steal=0.1 * r)

        return one

    merged = interleaved({"floor": run("floor", 300), "app": run("app", 200)}, 4, added_timings)
    assert order == [
        ("floor", 0), ("app", 0), ("app", 1), ("floor", 1),
        ("floor", 2), ("app", 2), ("app", 3), ("floor", 3),
    ]  # fmt: skip
    assert merged["floor"].ok == 1200 and merged["floor"].elapsed == 4.0
    assert merged["app"].rate == 200 and len(merged["app"].latencies) == 800
    assert abs(merged["app"].steal - 0.15) < 1e-9  # the turns' steal, weighted by their time
