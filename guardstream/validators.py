"""Checksums that tell a real identifier from a digit run of the same shape.

Without them a card-number pattern flags order numbers and timestamps; with them it flags only
numbers that pass the issuer's own check.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


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


def base62_crc32(text: str) -> bool:
    """GitHub and npm tokens: the last 6 characters are the CRC32 of the 30 before them, in base62."""
    body = text.rsplit("_", 1)[-1]
    if len(body) < 7 or not body.isascii() or not body.isalnum():
        return False
    number = zlib.crc32(body[-36:-6].encode())
    digits = ""
    while number:
        number, rest = divmod(number, 62)
        digits = BASE62[rest] + digits
    return body[-6:] == digits.rjust(6, "0")


def _bech32_polymod(values: list[int]) -> int:
    generator = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    check = 1
    for value in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for i, g in enumerate(generator):
            check ^= g if (top >> i) & 1 else 0
    return check


def bech32(text: str) -> bool:
    """Bech32 strings (BIP 173: age keys, Bitcoin segwit addresses): the 6-character checksum."""
    lowered = text.lower()
    hrp, sep, data = lowered.rpartition("1")
    if not sep or not hrp or len(data) < 6 or any(c not in BECH32 for c in data):
        return False
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    return _bech32_polymod(expanded + [BECH32.index(c) for c in data]) in (1, 0x2BC830A3)


VALIDATORS: dict[str, Callable[[str], bool]] = {
    "luhn": luhn,
    "iban": iban,
    "base62-crc32": base62_crc32,
    "bech32": bech32,
}
