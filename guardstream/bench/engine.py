"""The engine benchmark: the window alone, per delta.

It streams a large English text (the docstrings of Python's standard library:
real prose with code, numbers and the odd e-mail address, and present on every machine) through
one window in fixed-size deltas, and reports µs per delta next to the cost of the same loop with
no rules, so the figure is the rules' own cost.
"""

from __future__ import annotations

import importlib
import inspect
import statistics
import sys
import time
import timeit
import warnings
from collections.abc import Sequence
from typing import Any

import click

from guardstream.packs import load_rules
from guardstream.rules import Rule
from guardstream.window import Window

SKIPPED_MODULES = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test", "lib2to3", "ensurepip"}


def english_corpus(chars: int) -> str:
    """Deterministic English text of at least `chars` characters (repeated if the docs are short)."""
    docs: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in sorted(sys.stdlib_module_names):
            if name.startswith("_") or name in SKIPPED_MODULES:
                continue
            try:
                module = importlib.import_module(name)
            except Exception:  # platform-specific modules fail to import: skip them
                continue
            for attr in sorted(dir(module)):
                doc = inspect.getdoc(getattr(module, attr, None))
                if doc and len(doc) > 40:
                    docs.append(doc)
    text = "\n\n".join(dict.fromkeys(docs))
    while len(text) < chars:
        text += "\n\n" + text
    return text[:chars]


def time_window(
    rules: Sequence[Rule], text: str, delta_chars: int, *, normalize: bool = True
) -> tuple[float, int, int]:
    """(µs per delta, deltas, blocks) streaming `text` through fresh windows (a block restarts one)."""
    window = Window(rules, normalize=normalize)
    pos = deltas = blocks = 0
    started = time.perf_counter()
    for i in range(0, len(text), delta_chars):
        verdict = window.push(text[i : i + delta_chars])
        window.render(pos, verdict.released)
        pos = verdict.released
        deltas += 1
        if verdict.blocked is not None:
            blocks += 1
            window, pos = Window(rules, normalize=normalize), 0
    window.flush()
    elapsed = time.perf_counter() - started
    return elapsed / deltas * 1e6, deltas, blocks


def engine_bench(
    packs: Sequence[str], *, delta_chars: int = 20, chars: int = 1_000_000, repeats: int = 3
) -> dict[str, Any]:
    """µs per delta through one window: no rules, the packs' rules, and the cost of normalising
    (free on text that needs no mapping, a per-character map otherwise).

    Each of the `repeats` rounds runs every variant once, back to back, so that a slow spell of a
    shared machine falls on all of them alike; the report gives the best round and the median.
    The machine's speed is measured in the same run (`sum(range(1000))`, the figure Python's own
    `timeit` example prints) so that reports from different days can be compared.
    """
    rules = load_rules(packs).for_direction("output")
    text = english_corpus(chars)
    variants = {
        "accented": text.replace("e", "é"),
        "full_width": text.replace("a", "\uff41"),  # full-width 'a': every delta needs the offset map
    }
    times: dict[str, list[float]] = {}
    counts = (0, 0)
    for _ in range(repeats):
        times.setdefault("none", []).append(time_window((), text, delta_chars)[0])
        cost, deltas, blocks = time_window(rules, text, delta_chars)
        times.setdefault("rules", []).append(cost)
        counts = (deltas, blocks)
        times.setdefault("plain", []).append(time_window(rules, text, delta_chars, normalize=False)[0])
        for name, variant in variants.items():
            times.setdefault(f"{name}.on", []).append(time_window(rules, variant, delta_chars)[0])
            times.setdefault(f"{name}.off", []).append(time_window(rules, variant, delta_chars, normalize=False)[0])
    best = {name: min(values) for name, values in times.items()}
    normalising: dict[str, dict[str, float]] = {"english": {"off": best["plain"], "on": best["rules"]}}
    for name in variants:
        normalising[name] = {"off": best[f"{name}.off"], "on": best[f"{name}.on"]}
    return {
        "packs": list(packs),
        "rules": len(rules),
        "chars": len(text),
        "delta_chars": delta_chars,
        "deltas": counts[0],
        "blocks": counts[1],
        "rounds": repeats,
        "us_per_delta_no_rules": best["none"],
        "us_per_delta": best["rules"],
        "us_per_delta_median": statistics.median(times["rules"]),
        "us_per_delta_rules_only": best["rules"] - best["none"],
        "normalising_us_per_delta": normalising,
        "machine_reference_us": machine_reference_us(),
    }


def machine_reference_us() -> float:
    """µs for `sum(range(1000))`, best of five: how fast this machine runs Python right now."""
    return min(timeit.repeat("sum(range(1000))", number=2_000, repeat=5)) / 2_000 * 1e6


def print_engine(report: dict[str, Any]) -> None:
    packs = ", ".join(report["packs"]) or "none"
    click.echo(f"text: {report['chars']:,} chars of English (stdlib docstrings); delta: {report['delta_chars']} chars")
    click.echo(f"window, no rules:          {report['us_per_delta_no_rules']:7.2f} µs/delta")
    click.echo(
        f"window, {report['rules']} rules ({packs}): {report['us_per_delta']:7.2f} µs/delta  "
        f"({report['deltas']:,} deltas, {report['blocks']} blocks)"
    )
    click.echo(
        f"rules' own cost:           {report['us_per_delta_rules_only']:7.2f} µs/delta  "
        f"(best of {report['rounds']} interleaved rounds; median {report['us_per_delta_median']:.2f})"
    )
    click.echo(f"machine: sum(range(1000)) {report['machine_reference_us']:7.2f} µs")
    labels = {
        "english": "(NFKC, invisibles), English",
        "accented": "accented (é for e)",
        "full_width": "full-width a's",
    }
    for name, label in labels.items():
        cost = report["normalising_us_per_delta"][name]
        shown = "" if name == "english" else f" ({cost['off']:.2f} -> {cost['on']:.2f})"
        click.echo(f"normalising, {label}: {cost['on'] - cost['off']:+7.2f} µs/delta{shown}")


def keyword_bench(words: int = 5_000, chars: int = 300_000) -> dict[str, Any]:
    """Keyword lists by set lookup (what guardstream does) against `regex`'s `\\L<list>`."""
    import regex

    from guardstream.matchers import WORD, KeywordMatcher

    text = english_corpus(chars)
    vocabulary = sorted({w.casefold() for w in WORD.findall(english_corpus(2_000_000)) if len(w) > 3})
    keywords = vocabulary[:: max(1, len(vocabulary) // words)][:words]
    matcher = KeywordMatcher(keywords)
    started = time.perf_counter()
    ours = matcher.scan(text, 0, final=True)
    ours_seconds = time.perf_counter() - started
    named_list = regex.compile(r"\b\L<keywords>\b", regex.IGNORECASE, keywords=keywords)
    started = time.perf_counter()
    theirs = named_list.findall(text)
    theirs_seconds = time.perf_counter() - started
    megabytes = len(text) / 1e6
    return {
        "words": len(keywords),
        "chars": len(text),
        "matches": len(ours.matches) if ours is not None else 0,
        "regex_matches": len(theirs),
        "set_lookup_mb_per_s": megabytes / ours_seconds,
        "regex_list_mb_per_s": megabytes / theirs_seconds,
    }


def print_keywords(report: dict[str, Any]) -> None:
    click.echo(
        f"keywords: {report['words']:,} words over {report['chars']:,} chars "
        f"({report['matches']:,} / {report['regex_matches']:,} matches)"
    )
    click.echo(f"  set lookup (guardstream):  {report['set_lookup_mb_per_s']:7.2f} MB/s")
    click.echo(f"  regex \\L<list>:            {report['regex_list_mb_per_s']:7.2f} MB/s")
