"""The benchmarks' turns: floor and app alternate A B B A, and each side's turns add up."""

from __future__ import annotations

from bench.common import Timing, added_timings, cpu_per_request, interleaved


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


def test_turns_add_up_their_cpu_and_report_it_per_request():
    def turn(web: float, db: float | None, rss: float) -> Timing:
        usage = {"web_cpu_seconds": web, "db_cpu_seconds": db, "client_cpu_seconds": 0.5}
        return Timing(
            latencies=[0.01] * 500, elapsed=1.0, ok=500, usage=usage | {"web_peak_rss_mb": rss}
        )

    merged = added_timings([turn(3.0, 1.0, 90.0), turn(2.0, 0.5, 95.0)])
    assert merged.usage == {
        "web_cpu_seconds": 5.0,
        "db_cpu_seconds": 1.5,
        "client_cpu_seconds": 1.0,
        "web_peak_rss_mb": 95.0,  # the largest, not a sum
    }
    assert cpu_per_request(merged.usage, len(merged.latencies)) == {
        "web_cpu_ms_per_request": 5.0,
        "db_cpu_ms_per_request": 1.5,
        "client_cpu_ms_per_request": 1.0,
    }
    # A turn that could not read the database's CPU leaves the sum unknown, not short.
    unread = added_timings([turn(3.0, None, 90.0), turn(2.0, 0.5, 95.0)])
    assert unread.usage["db_cpu_seconds"] is None
    assert cpu_per_request(unread.usage, 1000)["db_cpu_ms_per_request"] is None
