"""Checksums that tell a real identifier from a digit run of the same shape.

Without them a card-number pattern flags order numbers and timestamps; with them it flags only
numbers that pass the issuer's own check.
"""

from __future__ import annotations

from collections.abc import Callable


def luhn(text: str) -> bool:
    """Payment card numbers (ISO/IEC 7812): the Luhn mod-10 checksum over the digits."""
    digits = [int(c) for c in text if c.isascii() and c.isdigit()]
    if len(digits) < 12:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban(text: str) -> bool:
    """IBANs (ISO 13616): move the first four characters to the end, letters to numbers, mod 97 == 1."""
    compact = "".join(c for c in text if c.isalnum()).upper()
    if not (15 <= len(compact) <= 34) or not compact.isascii():
        return False
    if not (compact[:2].isalpha() and compact[2:4].isdigit()):
        return False
    rearranged = compact[4:] + compact[:4]
    try:
        number = int("".join(str(int(c, 36)) for c in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


VALIDATORS: dict[str, Callable[[str], bool]] = {"luhn": luhn, "iban": iban}
