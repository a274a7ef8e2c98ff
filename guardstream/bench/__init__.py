"""`guardstream bench`: what moderation costs, measured rather than asserted.

- `engine`: the window alone, per delta, on a large English text (and keyword matching).
- `passthrough`: the bare pass-through proxy every proxy figure is compared with (part of the
  benchmark, not of the product).
- `load`: the client that streams through each path and times every event.
- `proxies`: the paths (the mock model, the bare proxy, guardstream variants) and the scenarios,
  and one measurement of one through the other; `processes`: starting them, reading /proc.
- `run`: every scenario through every path, each its own process on loopback, in one run.
- `report`: the table and the JSON.
"""
