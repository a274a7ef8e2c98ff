"""Classifier checks in the window, sans-I/O: what each check is asked about, and when a verdict lands."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from guardstream.checks import CheckPlan, CheckRequest, Checks
from guardstream.classifiers import ClassifierFailure, Verdict
from guardstream.window import Violation, Window


def words(count: int, *, flag_at: int | None = None) -> str:
    """`count` distinct words, no sentence ends; with `flag_at`, that word is "BAD"."""
    return " ".join("BAD" if i == flag_at else f"w{i:05d}" for i in range(count)) + " "


@dataclass
class Drive:
    """One channel through a window and its checks, the way the proxy drives them."""

    plan: CheckPlan
    window: Window = field(init=False)
    checks: Checks = field(init=False)
    asked: list[CheckRequest] = field(default_factory=list)
    delivered: int = 0

    def __post_init__(self) -> None:
        self.window = Window([])
        self.checks = Checks([self.plan])
        self.checks.watch(self.window)

    def push(self, delta: str) -> None:
        verdict = self.window.push(delta)
        self.deliver(verdict.released)
        self.checks.arrived(self.window)
        self.asked += self.checks.take()

    def deliver(self, released: int) -> None:
        # The client gets what was released (which lets the window trim what it no longer needs).
        self.window.render(self.delivered, released)
        self.delivered = released

    def answer(self, request: CheckRequest) -> Violation | None:
        violation = self.checks.resolve(request, [Verdict("BAD" in text) for text in request.texts])
        if violation is not None:
            self.deliver(self.window.block(violation).released)
            return violation
        self.deliver(self.window.reconsider().released)
        self.checks.arrived(self.window, final=self.window.is_finished)
        self.asked += self.checks.take()
        return None

    def finish(self) -> None:
        self.deliver(self.window.flush().released)
        self.checks.arrived(self.window, final=True)
        self.asked += self.checks.take()

    def answer_all(self) -> Violation | None:
        while self.checks.is_waiting:
            request = self.asked[-1]
            violation = self.answer(request)
            if violation is not None:
                return violation
        return None


def assert_reads_new_text_plus_overlap(request: CheckRequest, text: str, overlap: int) -> None:
    """Each text of a check is its new characters plus the `overlap` before them, taken whole."""
    piece_start = request.start
    for piece in request.texts:
        read_from = max(0, piece_start - overlap)
        assert piece == text[read_from : read_from + len(piece)]
        piece_start = read_from + len(piece)
    assert piece_start == request.end


def covered(requests: list[CheckRequest]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for request in sorted(requests, key=lambda r: r.start):
        if spans and request.start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], request.end))
        else:
            spans.append((request.start, request.end))
    return spans


def stream_past_a_check_in_flight(plan: CheckPlan) -> tuple[Drive, str, CheckRequest]:
    """A first check asked after 300 characters, then far more than the window keeps behind its
    release point arriving and leaving (9,100 characters in all) while that check is out."""
    drive = Drive(plan)
    text = words(2000)
    drive.push(text[:300])
    [first] = drive.asked
    for i in range(300, 9100, 40):
        drive.push(text[i : i + 40])
    return drive, text, first


def test_text_released_while_an_async_check_is_in_flight_is_read_by_the_next_check() -> None:
    plan = CheckPlan("c", mode="async", every_chars=200, overlap_chars=100)
    drive, text, first = stream_past_a_check_in_flight(plan)
    assert drive.delivered == 9100 and drive.asked == [first]
    assert drive.window.base <= first.end - plan.overlap_chars
    drive.answer(first)
    second = drive.asked[-1]
    assert second.start == first.end
    assert_reads_new_text_plus_overlap(second, text, plan.overlap_chars)
    # Once asked about, the text may go: the window is back to its usual size.
    drive.push(text[9100:9140])
    assert drive.window.base == drive.delivered - drive.window.context_chars


def test_a_check_that_times_out_under_on_error_allow_lets_the_window_trim_what_it_held() -> None:
    # What the window keeps for a check is bounded by the check's timeout: then it fails, and under
    # on_error = "allow" the next check reads the backlog and the window lets it go.
    plan = CheckPlan("c", mode="async", every_chars=200, overlap_chars=100, on_error="allow")
    drive, text, first = stream_past_a_check_in_flight(plan)
    assert drive.window.base <= first.end - plan.overlap_chars
    assert drive.checks.resolve(first, [ClassifierFailure("timeout", "no verdict")]) is None
    drive.checks.arrived(drive.window)
    [second] = drive.checks.take()
    assert (second.start, second.end) == (first.end, 9100)
    drive.push(text[9100:9140])
    assert drive.window.base == drive.delivered - drive.window.context_chars


@pytest.mark.parametrize("mode", ["async", "strict"])
@pytest.mark.parametrize("answer_every", [1, 7, 50, 400])
# Plain text, and text the rules read normalised (a zero-width space, full-width letters).
@pytest.mark.parametrize("odd", ["", "\u200b", "\uff57"])
def test_every_character_is_read_by_a_check_before_the_end_is_reported(mode: str, answer_every: int, odd: str) -> None:
    plan = CheckPlan("c", mode=mode, every_chars=200, overlap_chars=100)  # type: ignore[arg-type]
    drive = Drive(plan)
    text = words(1500).replace("w0", f"w{odd}0")
    for n, i in enumerate(range(0, len(text), 13)):
        drive.push(text[i : i + 13])
        if n % answer_every == 0 and drive.checks.is_waiting:
            drive.answer(drive.asked[-1])
    drive.finish()
    assert drive.answer_all() is None
    assert drive.delivered == len(text)
    assert covered(drive.asked) == [(0, len(text))]
    for request in drive.asked:
        assert_reads_new_text_plus_overlap(request, text, plan.overlap_chars)


def test_a_flag_in_text_released_during_a_slow_async_check_still_ends_the_stream() -> None:
    drive = Drive(CheckPlan("c", mode="async", every_chars=200, overlap_chars=100))
    text = words(1500, flag_at=500)
    drive.push(text[:300])
    for i in range(300, len(text), 40):
        drive.push(text[i : i + 40])
    drive.finish()
    violation = drive.answer_all()
    assert violation is not None and violation.rule.id == "c"


def leak_after_flag(*, every: int, rate: int, latency: int, flag_at: int) -> int:
    """Characters delivered past the end of a flagged word by the time its verdict lands: the
    upstream streams `rate` characters a tick, every check is answered `latency` ticks after it is
    asked, and the rules release text at once."""
    drive = Drive(CheckPlan("c", mode="async", every_chars=every, overlap_chars=100))
    text = words(3000, flag_at=flag_at)
    flag_end = text.index("BAD") + len("BAD")
    due: dict[int, int] = {}  # request id -> the tick its verdict lands
    for tick in range(len(text)):
        for request in [r for r in drive.asked if due[r.id] == tick]:
            if drive.answer(request) is not None:
                return drive.delivered - flag_end
        start = tick * rate
        if start < len(text):
            drive.push(text[start : start + rate])
            if start + rate >= len(text):
                drive.finish()
        for request in drive.asked:  # asked this tick: on a verdict, or on the text that came
            due.setdefault(request.id, tick + latency)
    raise AssertionError("the flag was never reported")


@pytest.mark.parametrize(("rate", "latency"), [(5, 3), (5, 10), (20, 10), (80, 3), (80, 10)])
def test_async_leak_is_at_most_the_larger_of_a_span_and_a_round_trip_plus_one_round_trip(
    rate: int, latency: int
) -> None:
    # The check that flags a word may have to wait for the one in flight, and a check started then
    # reads everything that streamed meanwhile: at rates where a round trip streams more than
    # every_chars, that (not every_chars) is the span.
    every = 200
    worst = max(leak_after_flag(every=every, rate=rate, latency=latency, flag_at=i) for i in range(40, 300, 3))
    streamed = rate * latency
    assert worst <= max(every, streamed) + streamed
