"""Render the dashboard's main panels to a PNG from a real Prometheus run.

    python -m tests.render_dashboard --out dashboards/guardstream.png

Starts the same stack as tests/test_prometheus.py (`guardstream serve --upstream mock`, a real
Prometheus scraping it every second with dashboards/alerts.yml loaded), drives the mock traffic for
90 seconds, then screenshots Prometheus' console page of the main panels with Debian's headless
Chromium. Needs the prometheus and chromium packages (`apt-get install prometheus chromium`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from urllib.parse import quote

from tests.prometheus_stack import drive_traffic, find_tool, monitored_guardstream, render_png


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.render_dashboard", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("dashboards/guardstream.png"), help="PNG to write.")
    parser.add_argument("--seconds", type=float, default=90, help="How long to keep traffic going.")
    args = parser.parse_args(argv)
    prometheus = find_tool("prometheus")
    find_tool("chromium")  # fail before the minute of traffic, not after
    with monitored_guardstream(prometheus) as (server, url):
        # Rounds a few seconds apart draw lines rather than a single step.
        deadline = time.monotonic() + args.seconds
        rounds = 0
        while time.monotonic() < deadline:
            rounds += 1
            drive_traffic(url, rounds=1 + rounds % 3)
            time.sleep(2)
        time.sleep(3)  # the last scrape and rule evaluation
        window = {"duration": int(args.seconds) + 30, "endTime": 0}  # the console's time range, in its URL hash
        page = f"{server.url}/consoles/guardstream.html#pctc{quote(json.dumps(window))}"
        render_png(page, args.out.resolve())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
