"""`guardstream bench`: what moderation costs, measured rather than asserted.

The engine benchmark streams a large English text (the docstrings of Python's standard library:
real prose with code, numbers and the odd e-mail address, and present on every machine) through
one window in fixed-size deltas, and reports µs per delta next to the cost of the same loop with
no rules, so the figure is the rules' own cost.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import time
import warnings
from collections.abc import Sequence

import click

from guardstream.rules import Rule, load_rules
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


def time_window(rules: Sequence[Rule], text: str, delta_chars: int) -> tuple[float, int, int]:
    """(µs per delta, deltas, blocks) streaming `text` through fresh windows (a block restarts one)."""
    window = Window(rules)
    pos = deltas = blocks = 0
    started = time.perf_counter()
    for i in range(0, len(text), delta_chars):
        verdict = window.push(text[i : i + delta_chars])
        window.render(pos, verdict.released)
        pos = verdict.released
        deltas += 1
        if verdict.blocked is not None:
            blocks += 1
            window, pos = Window(rules), 0
    window.flush()
    elapsed = time.perf_counter() - started
    return elapsed / deltas * 1e6, deltas, blocks


def run_engine_bench(packs: Sequence[str], *, delta_chars: int = 20, chars: int = 1_000_000, repeats: int = 3) -> None:
    rules = load_rules(packs).for_direction("output")
    text = english_corpus(chars)
    click.echo(f"text: {len(text):,} chars of English (stdlib docstrings); delta: {delta_chars} chars")
    baseline = min(time_window((), text, delta_chars)[0] for _ in range(repeats))
    results = [time_window(rules, text, delta_chars) for _ in range(repeats)]
    best = min(r[0] for r in results)
    deltas, blocks = results[0][1], results[0][2]
    click.echo(f"window, no rules:          {baseline:7.2f} µs/delta")
    click.echo(
        f"window, {len(rules)} rules ({', '.join(packs)}): {best:7.2f} µs/delta  ({deltas:,} deltas, {blocks} blocks)"
    )
    click.echo(f"rules' own cost:           {best - baseline:7.2f} µs/delta")


def run_keyword_bench(words: int = 5_000, chars: int = 300_000) -> None:
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
    found = len(ours.matches) if ours is not None else 0
    megabytes = len(text) / 1e6
    click.echo(f"keywords: {len(keywords):,} words over {len(text):,} chars ({found:,} / {len(theirs):,} matches)")
    click.echo(f"  set lookup (guardstream):  {megabytes / ours_seconds:7.2f} MB/s")
    click.echo(f"  regex \\L<list>:            {megabytes / theirs_seconds:7.2f} MB/s")
