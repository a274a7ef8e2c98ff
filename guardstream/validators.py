"""Checksums that tell a real identifier from a digit run of the same shape.

Without them a card-number pattern flags order numbers and timestamps; with them it flags only
numbers that pass the issuer's own check.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


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


# IBAN length per country (the IBAN registry): a checksum that holds on the wrong length is a typo.
IBAN_LENGTHS = {
    entry[:2]: int(entry[2:])
    for entry in (
        "AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BI27 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 DJ27 DK18 DO28 "
        "EE20 EG29 ES24 FI18 FK18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HN28 HR21 HU28 IE22 IL23 IQ23 IS26 "
        "IT27 JO30 KW30 KZ20 LB28 LC32 LI21 LT20 LU20 LV21 LY25 MC27 MD24 ME22 MK19 MN20 MR27 MT31 MU30 NI28 "
        "NL18 NO15 OM23 PK24 PL28 PS29 PT25 QA29 RO24 RS22 RU33 SA24 SC31 SD18 SE24 SI19 SK24 SM27 SO23 ST25 "
        "SV28 TL23 TN24 TR26 UA29 VA22 VG24 XK20 YE30"
    ).split()
}


def iban(text: str) -> bool:
    """IBANs (ISO 13616): the country's length, then the first four characters moved to the end,
    letters to numbers, mod 97 == 1."""
    compact = "".join(c for c in text if c.isalnum()).upper()
    if not (15 <= len(compact) <= 34) or not compact.isascii():
        return False
    if IBAN_LENGTHS.get(compact[:2], len(compact)) != len(compact):
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


def _digits(text: str) -> list[int]:
    return [int(c) for c in text if c.isascii() and c.isdigit()]


def nhs(text: str) -> bool:
    """UK NHS numbers: 10 digits, weights 10..2, mod 11 (a check digit of 10 is never issued)."""
    d = _digits(text)
    if len(d) != 10:
        return False
    check = 11 - sum(w * x for w, x in zip(range(10, 1, -1), d, strict=False)) % 11
    return (0 if check == 11 else check) == d[9]


def bsn(text: str) -> bool:
    """Dutch citizen service numbers: the 11-proof (weights 9..2 and -1)."""
    d = _digits(text)
    if len(d) != 9 or d[0] == 0 and d[1] == 0:
        return False
    return sum(w * x for w, x in zip([9, 8, 7, 6, 5, 4, 3, 2, -1], d, strict=True)) % 11 == 0


def cpf(text: str) -> bool:
    """Brazilian CPF numbers: two mod-11 check digits; repeated digits are never issued."""
    d = _digits(text)
    if len(d) != 11 or len(set(d)) == 1:
        return False
    for n in (9, 10):
        check = sum(w * x for w, x in zip(range(n + 1, 1, -1), d, strict=False)) * 10 % 11 % 10
        if check != d[n]:
            return False
    return True


def dni(text: str) -> bool:
    """Spanish DNI (8 digits + letter) and NIE (X/Y/Z + 7 digits + letter): the mod-23 letter."""
    compact = "".join(c for c in text if c.isalnum()).upper()
    if len(compact) != 9 or not compact[-1].isalpha():
        return False
    number = compact[:-1]
    if number[0] in "XYZ":
        number = str("XYZ".index(number[0])) + number[1:]
    if not number.isdigit():
        return False
    return DNI_LETTERS[int(number) % 23] == compact[-1]


def _verhoeff_tables() -> tuple[list[list[int]], list[list[int]]]:
    d = [[0] * 10 for _ in range(10)]
    for i in range(10):
        for j in range(10):
            if i < 5 and j < 5:
                d[i][j] = (i + j) % 5
            elif i < 5:
                d[i][j] = 5 + (i + j) % 5
            elif j < 5:
                d[i][j] = 5 + (i - j) % 5
            else:
                d[i][j] = (i - j) % 5
    p = [list(range(10)), [1, 5, 7, 6, 2, 8, 3, 0, 9, 4]]
    for _ in range(6):
        p.append([p[1][x] for x in p[-1]])
    return d, p


VERHOEFF_MUL, VERHOEFF_PERM = _verhoeff_tables()


def aadhaar(text: str) -> bool:
    """Indian Aadhaar numbers: 12 digits, not starting with 0 or 1, Verhoeff check digit."""
    d = _digits(text)
    if len(d) != 12 or d[0] < 2:
        return False
    check = 0
    for i, x in enumerate(reversed(d)):
        check = VERHOEFF_MUL[check][VERHOEFF_PERM[i % 8][x]]
    return check == 0


def sin(text: str) -> bool:
    """Canadian social insurance numbers: 9 digits, Luhn (the card check, on fewer digits)."""
    d = _digits(text)
    if len(d) != 9 or d[0] in (0, 8):
        return False
    total = sum(x if i % 2 == 0 else (2 * x if x < 5 else 2 * x - 9) for i, x in enumerate(reversed(d)))
    return total % 10 == 0


def base58check(text: str) -> bool:
    """Base58Check strings (Bitcoin P2PKH/P2SH addresses): the double-SHA-256 checksum."""
    number = 0
    for c in text:
        index = BASE58.find(c)
        if index < 0:
            return False
        number = number * 58 + index
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    raw = b"\0" * (len(text) - len(text.lstrip("1"))) + raw
    if len(raw) < 5:
        return False
    return hashlib.sha256(hashlib.sha256(raw[:-4]).digest()).digest()[:4] == raw[-4:]


VALIDATORS: dict[str, Callable[[str], bool]] = {
    "luhn": luhn,
    "iban": iban,
    "base62-crc32": base62_crc32,
    "bech32": bech32,
    "nhs": nhs,
    "bsn": bsn,
    "cpf": cpf,
    "dni": dni,
    "aadhaar": aadhaar,
    "sin": sin,
    "base58check": base58check,
}
