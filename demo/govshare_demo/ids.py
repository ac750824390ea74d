"""Identifier numbers with their check characters, generated for whole columns at once.

Every function works on numpy arrays and returns a pyarrow string array, so a column of
300,000 resident IDs costs milliseconds: the characters are assembled in a ``(rows, width)``
byte matrix and handed to Arrow as the data buffer of a string array, without a Python loop.
Deliberately broken values (for the quality defects) are made by ``corrupt_check_char``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray
from stdnum import numdb

Ints = NDArray[np.int64]

# GB 11643: ISO 7064 MOD 11-2 over the first 17 digits.
RIC_WEIGHTS = np.array([pow(2, 17 - i, 11) for i in range(17)], dtype=np.int64)
RIC_CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)  # indexed by weighted sum mod 11
RIC_ALPHABET = "0123456789X"

# GB 32100: the 31-character alphabet (no I, O, S, V, Z) and weights 3^i mod 31.
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_BYTES = np.frombuffer(USCC_ALPHABET.encode(), dtype=np.uint8)
USCC_WEIGHTS = np.array([pow(3, i, 31) for i in range(17)], dtype=np.int64)
# GB 11714 organisation code (characters 9-17 of a USCC): 8 characters and a MOD 11 check.
ORG_WEIGHTS = np.array([3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)

# ISO 3779 / GB 16735 vehicle identification numbers: no I, O or Q; check digit at position 9.
VIN_ALPHABET = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"
_VIN_VALUES = dict(zip(VIN_ALPHABET, [*range(10), 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 7, 9,
                                      2, 3, 4, 5, 6, 7, 8, 9], strict=True))
VIN_WEIGHTS = np.array([8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2], dtype=np.int64)
# Model-year characters from 2010 (A) to 2025 (S).
VIN_YEARS = "ABCDEFGHJKLMNPRS"


def strings_from_bytes(matrix: NDArray[np.uint8]) -> pa.StringArray:
    """A string array whose rows are the rows of an ASCII byte matrix (zero-copy)."""
    rows, width = matrix.shape
    offsets = np.arange(0, (rows + 1) * width, width, dtype=np.int32)
    data = np.ascontiguousarray(matrix)
    return pa.Array.from_buffers(pa.string(), rows, [None, pa.py_buffer(offsets),
                                                     pa.py_buffer(data)])


def _digit_matrix(numbers: Ints, width: int) -> Ints:
    """Decimal digits of each number, most significant first, as a ``(rows, width)`` matrix."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return (numbers[:, None] // powers[None, :]) % 10


# --- resident identity numbers (GB 11643) ----------------------------------------------------

def ric_bodies(region: Ints, birth: NDArray[np.datetime64], seq: Ints) -> Ints:
    """The first 17 digits as one integer: region (6), birth date yyyymmdd (8), sequence (3)."""
    days = birth.astype("datetime64[D]")
    years = days.astype("datetime64[Y]").astype(np.int64) + 1970
    months = days.astype("datetime64[M]").astype(np.int64) % 12 + 1
    mday = (days - days.astype("datetime64[M]")).astype(np.int64) + 1
    yyyymmdd = years * 10_000 + months * 100 + mday
    return region.astype(np.int64) * 10**11 + yyyymmdd * 1000 + seq.astype(np.int64)


def resident_ids(bodies: Ints) -> pa.StringArray:
    """Complete 18-character numbers for 17-digit bodies (check character may be 'X')."""
    digits = _digit_matrix(bodies, 17)
    check = RIC_CHECK[(digits * RIC_WEIGHTS).sum(axis=1) % 11]
    matrix = np.empty((len(bodies), 18), dtype=np.uint8)
    matrix[:, :17] = digits + ord("0")
    matrix[:, 17] = check
    return strings_from_bytes(matrix)


@cache
def region_valid_years(code: int) -> tuple[tuple[int, int], ...]:
    """Birth years for which ``python-stdnum`` accepts ``code`` as a birth place.

    Its GB/T 2260 history dates each county code (e.g. 龙华区 440309 only from 2016); an ID
    is only valid if its region code existed in the birth year, so the demo draws each
    person's code among those valid for their year of birth.
    """
    results = numdb.get("cn/loc").info(f"{code:06d}")
    county = {k: v for _, props in results for k, v in props.items()}.get("county")
    if not county:
        return ()
    spans: list[tuple[int, int]] = []
    for part in county.split(","):
        if not part.startswith("["):
            return ((0, 9999),)
        start, end = part[1:].split("]")[0].split("-")
        spans.append((int(start or 0), int(end or 9999)))
    return tuple(spans)


def region_valid_in(code: int, year: int) -> bool:
    return any(start <= year <= end for start, end in region_valid_years(code))


def birth_regions(rng: np.random.Generator, years: Ints, codes: Sequence[int],
                  weights: Sequence[float]) -> Ints:
    """A region code per person, drawn among ``codes`` valid in that person's birth year."""
    out = np.zeros(len(years), dtype=np.int64)
    code_arr = np.asarray(codes, dtype=np.int64)
    weight_arr = np.asarray(weights, dtype=np.float64)
    for year in np.unique(years):
        mask = years == year
        ok = np.array([region_valid_in(int(c), int(year)) for c in codes])
        if not ok.any():
            raise ValueError(f"no birth region code is valid for {year}")
        p = weight_arr * ok
        out[mask] = rng.choice(code_arr, size=int(mask.sum()), p=p / p.sum())
    return out


def sequence_numbers(rng: np.random.Generator, male: NDArray[np.bool_]) -> Ints:
    """The 3-digit order code: odd for men, even for women, never 000."""
    half = rng.integers(0, 499, size=len(male))
    return np.where(male, 2 * half + 1, 2 * half + 2).astype(np.int64)


# --- unified social credit codes (GB 32100) --------------------------------------------------

def _org_check(values: Ints) -> Ints:
    """GB 11714 check character values ('X' as 33, the USCC alphabet index of 'X')."""
    c = 11 - (values * ORG_WEIGHTS).sum(axis=1) % 11
    return np.select([c == 11, c == 10], [0, USCC_ALPHABET.index("X")], default=c)


def _char_rows(values: str | Sequence[str], n: int, alphabet: str) -> Ints:
    """Alphabet indices of equal-length short strings, one per row (or one for all rows)."""
    if isinstance(values, str):
        values = [values]
    distinct, inverse = np.unique(np.asarray(values), return_inverse=True)
    table = np.array([[alphabet.index(c) for c in v] for v in distinct], dtype=np.int64)
    rows = table[inverse.ravel()]
    return np.broadcast_to(rows, (n, rows.shape[1])) if len(rows) == 1 else rows


def usccs(rng: np.random.Generator, prefixes: str | Sequence[str],
          regions: Ints) -> pa.StringArray:
    """Credit codes for the given two-character prefixes (authority + entity type, e.g. '91'
    for an enterprise, '92' for an individual business, '52' for a private non-enterprise unit)
    and six-digit region codes. About 70% carry post-2015 'MA' organisation codes, the rest
    legacy all-digit ones, as in a real register."""
    n = len(regions)
    # Alphabet indices (0-30) of the 8 organisation-code characters.
    body = rng.integers(0, 31, size=(n, 8))
    legacy = rng.random(n) < 0.3
    body[legacy] = rng.integers(0, 10, size=(int(legacy.sum()), 8))
    body[~legacy, 0] = USCC_ALPHABET.index("M")
    body[~legacy, 1] = USCC_ALPHABET.index("A")
    # GB 11714 values: digits as themselves, letters A=10 … Z=35.
    letters = np.array([int(ch, 36) for ch in USCC_ALPHABET], dtype=np.int64)
    org_check = _org_check(letters[body])
    index = np.empty((n, 18), dtype=np.int64)
    index[:, :2] = _char_rows(prefixes, n, USCC_ALPHABET)
    index[:, 2:8] = _digit_matrix(regions.astype(np.int64), 6)
    index[:, 8:16] = body
    index[:, 16] = org_check
    index[:, 17] = (31 - (index[:, :17] * USCC_WEIGHTS).sum(axis=1) % 31) % 31
    return strings_from_bytes(_USCC_BYTES[index])


# --- mobiles, bank cards, vehicles -----------------------------------------------------------

def mobiles(rng: np.random.Generator, n: int, prefixes: Sequence[int]) -> pa.Array:
    """11-digit mobile numbers on the carriers' real segments."""
    head = rng.choice(np.asarray(prefixes, dtype=np.int64), size=n)
    return pa.array(head * 10**8 + rng.integers(0, 10**8, size=n)).cast(pa.string())


def bank_cards(rng: np.random.Generator, bins: Ints) -> pa.StringArray:
    """19-digit UnionPay card numbers: 6-digit BIN, 12 digits and a Luhn check digit."""
    n = len(bins)
    digits = np.empty((n, 19), dtype=np.int64)
    digits[:, :6] = _digit_matrix(bins.astype(np.int64), 6)
    digits[:, 6:18] = rng.integers(0, 10, size=(n, 12))
    # Luhn: double every second digit from the right, the check digit being the rightmost.
    doubled = digits[:, 17::-2] * 2
    doubled = doubled - 9 * (doubled > 9)
    total = doubled.sum(axis=1) + digits[:, 16::-2].sum(axis=1)
    digits[:, 18] = (10 - total % 10) % 10
    return strings_from_bytes((digits + ord("0")).astype(np.uint8))


def vins(rng: np.random.Generator, wmis: Sequence[str], years: Ints) -> pa.StringArray:
    """Vehicle identification numbers for the given manufacturer identifiers and model years
    (2010–2025), with the position-9 check digit."""
    n = len(years)
    alphabet = np.frombuffer(VIN_ALPHABET.encode(), dtype=np.uint8)
    values = np.array([_VIN_VALUES[c] for c in VIN_ALPHABET], dtype=np.int64)
    index = rng.integers(0, len(VIN_ALPHABET), size=(n, 17))
    index[:, :3] = _char_rows(wmis, n, VIN_ALPHABET)
    year_chars = np.array([VIN_ALPHABET.index(c) for c in VIN_YEARS], dtype=np.int64)
    index[:, 9] = year_chars[np.clip(years - 2010, 0, len(VIN_YEARS) - 1)]
    index[:, 11:] = rng.integers(0, 10, size=(n, 6))  # serial numbers are digits
    check = (values[index] * VIN_WEIGHTS).sum(axis=1) % 11
    chars = alphabet[index]
    chars[:, 8] = np.where(check == 10, ord("X"), check + ord("0"))
    return strings_from_bytes(chars)


def corrupt_check_char(values: list[str], alphabet: str,
                       rng: np.random.Generator) -> list[str]:
    """The same numbers with a different, hence wrong, final check character."""
    shifts = rng.integers(1, len(alphabet), size=len(values))
    out = []
    for value, shift in zip(values, shifts, strict=True):
        position = alphabet.find(value[-1])
        out.append(value[:-1] + alphabet[(position + int(shift)) % len(alphabet)])
    return out
