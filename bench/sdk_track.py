"""Cost of one heron.track() call in the caller's thread.

    python bench/sdk_track.py [--calls 200000] [--max-queue-size N]

The background sender posts to a local fake Heron server (a real HTTP server on 127.0.0.1 that
answers 200), so the measurement includes whatever interference the sender thread causes (GIL
hand-offs while it serialises and sends batches). Each call is timed individually with
time.perf_counter_ns(); the timer's own overhead is measured and subtracted. Target: median < 5 µs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

try:
    import heron
except ImportError:  # not pip-installed: use the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sdk" / "python"))
    import heron


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    received = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = json.dumps({"status": "stored", "count": 0}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        type(self).received += 1

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _percentile(sorted_values: list[int], q: float) -> float:
    return float(sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument(
        "--max-queue-size",
        type=int,
        default=None,
        help="client buffer size (default: large enough to hold every call, so nothing is dropped)",
    )
    args = parser.parse_args()
    calls: int = args.calls

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"

    client = heron.init(
        "bench-key",
        service="bench",
        environment="local",
        endpoint=endpoint,
        max_queue_size=args.max_queue_size or calls + 1000,
    )
    track = heron.track  # what applications call: the module-level function
    metadata = {"order_id": "ord_123", "amount": 4200, "currency": "EUR"}
    perf = time.perf_counter_ns

    for _ in range(5_000):  # warm up (imports, caches, the sender's first connection)
        track("bench.warmup", metadata)
    heron.flush(timeout=30)

    # Overhead of the timing itself, subtracted below.
    overhead = [0] * 10_000
    for i in range(len(overhead)):
        t0 = perf()
        overhead[i] = perf() - t0
    timer_ns = statistics.median(overhead)

    samples = [0] * calls
    wall0 = perf()
    for i in range(calls):
        t0 = perf()
        track("payment.completed", metadata)
        samples[i] = perf() - t0
    wall_ns = perf() - wall0

    delivered = heron.flush(timeout=60)
    stats = heron.stats()
    heron.close()
    server.shutdown()

    samples = sorted(max(0, s - timer_ns) for s in samples)
    median_us = _percentile(samples, 0.50) / 1000
    p99_us = _percentile(samples, 0.99) / 1000
    p999_us = _percentile(samples, 0.999) / 1000
    print(f"heron {heron.__version__} on Python {sys.version.split()[0]} ({sys.platform}, pid {os.getpid()})")
    print(f"endpoint {client.endpoint} (local fake server answering 200)")
    print(f"{calls:,} calls of heron.track('payment.completed', <3-key dict>) in the caller's thread")
    print(f"  timer overhead subtracted: {timer_ns / 1000:.3f} µs per sample")
    max_us = samples[-1] / 1000
    print(f"  median {median_us:.2f} µs   p99 {p99_us:.2f} µs   p99.9 {p999_us:.2f} µs   max {max_us:.0f} µs")
    print(f"  throughput incl. timing: {calls / (wall_ns / 1e9):,.0f} calls/s")
    print(
        f"  sender: delivered={delivered} sent={stats.sent:,} dropped={stats.dropped:,} "
        f"failed_requests={stats.failed_requests} requests_received={_Handler.received:,}"
    )
    verdict = "OK" if median_us < 5 else "ABOVE TARGET"
    print(f"track() median: {median_us:.2f} µs (target < 5 µs: {verdict})")


if __name__ == "__main__":
    main()
