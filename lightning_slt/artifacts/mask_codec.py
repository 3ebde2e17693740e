"""Code boolean pruning masks in well under one bit per entry.

Why: a ticket at 90 % sparsity keeps 0.4 bytes of fp32 values per entry, so a 1-bit-per-entry
mask (0.125 bytes) would be a quarter of the file; at 98 % it would be more than half. A mask is
close to a Bernoulli field, whose entropy H(p) = -p log2 p - (1-p) log2(1-p) is 0.47 bits at
p = 0.1 and 0.14 bits at p = 0.02. Golomb-Rice coding of the gaps between the entries of the
rarer kind (kept entries below 50 % density, pruned entries above) gets within ~2 % of that floor
for such masks, and a structured mask (whole rows pruned) codes no worse than its gaps allow.
Near 50 % density no code beats one bit per entry by much, so a plain bitmap is kept there
(and is faster to decode).

Layout: each gap g >= 0 is split into a quotient g >> k, written in unary (that many 0 bits then
a 1) into one bit stream, and a k-bit remainder written into a second, fixed-width stream. Two
streams instead of the usual interleaving cost the same number of bits but make decoding a few
numpy calls: the 1 bits of the unary stream are the symbol ends, and the remainders are a plain
(count, k) bit matrix. No Python loop runs per entry, in either direction.
"""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

# Widest Rice parameter ever needed: gaps are below 2**63 (int64 positions).
_MAX_RICE_K = 62
# Gap codes must save at least 2 % over one bit per entry to be used instead of a bitmap, whose
# decoding is a single np.unpackbits (10x faster than unary decoding with k = 0).
_BITMAP_BELOW = 0.98


@dataclass(frozen=True)
class EncodedMask:
    """A mask coded as Rice-coded gaps between entries equal to `coded_value`, or as a bitmap.

    Attributes:
        shape: shape of the mask.
        codec: "rice-gaps", or "bitmap" when gaps would not beat one bit per entry; a bitmap
            keeps its packed bits in `unary` and leaves the Rice fields at 0.
        coded_value: True if the gaps are between kept entries (density <= 0.5), False if
            between pruned entries.
        count: number of entries equal to `coded_value`.
        rice_k: Rice parameter: number of low gap bits stored verbatim.
        unary_bits: length in bits of the unary stream (sum of quotients + count).
        unary: the unary stream, packed big-endian (np.packbits).
        remainders: the count x rice_k remainder bits, packed big-endian.
    """

    shape: tuple[int, ...]
    codec: str
    coded_value: bool
    count: int
    rice_k: int
    unary_bits: int
    unary: bytes
    remainders: bytes

    @property
    def numel(self) -> int:
        return math.prod(self.shape)  # Python ints: a crafted shape cannot wrap around

    @property
    def nbytes(self) -> int:
        """Bytes of coded data (both streams); the JSON parameters are extra."""
        return len(self.unary) + len(self.remainders)

    @property
    def bits_per_entry(self) -> float:
        return 8.0 * self.nbytes / self.numel if self.numel else 0.0

    @property
    def kept(self) -> int:
        """Number of kept (True) entries."""
        return self.count if self.coded_value else self.numel - self.count

    def params(self) -> dict[str, Any]:
        """JSON-ready parameters that, with `to_bytes()`, are all `from_bytes` needs."""
        return {
            "codec": self.codec,
            "coded_value": self.coded_value,
            "count": self.count,
            "rice_k": self.rice_k,
            "unary_bits": self.unary_bits,
            "unary_nbytes": len(self.unary),
            "remainder_nbytes": len(self.remainders),
        }

    def to_bytes(self) -> bytes:
        return self.unary + self.remainders

    @classmethod
    def from_bytes(cls, shape: tuple[int, ...], params: dict[str, Any], data: bytes) -> "EncodedMask":
        """Rebuild from `params()` and `to_bytes()`, every length checked against `data` first.

        Each length the parameters declare must be the one its stream has (a bitmap: one bit per
        entry; a Rice code: `unary_bits` and `count` x `rice_k` bits), so nothing decoded from
        them can be larger than the bytes present allow.

        Raises:
            ValueError: saying which parameter does not match the data, or is missing or malformed.
        """
        try:
            codec = str(params["codec"])
            fields = {name: _count(params, name) for name in ("count", "rice_k", "unary_bits")}
            unary_nbytes, remainder_nbytes = _count(params, "unary_nbytes"), _count(params, "remainder_nbytes")
            coded_value = params["coded_value"]
        except KeyError as error:
            raise ValueError(f"mask parameters are incomplete or malformed: missing {error}") from None
        if codec not in ("rice-gaps", "bitmap"):
            raise ValueError(f"unknown mask codec {codec!r}; known: 'rice-gaps', 'bitmap'")
        if not isinstance(coded_value, bool):
            raise ValueError(f"mask parameter coded_value must be true or false, got {coded_value!r}")
        if unary_nbytes + remainder_nbytes != len(data):
            raise ValueError(f"mask data has {len(data)} bytes, parameters say {unary_nbytes + remainder_nbytes}")
        encoded = cls(shape=tuple(shape), codec=codec, coded_value=coded_value, unary=bytes(data[:unary_nbytes]),
                      remainders=bytes(data[unary_nbytes:]), **fields)
        encoded.check_lengths()
        return encoded

    def check_lengths(self) -> None:
        """Every declared length against the streams (no allocation): what decoding relies on.

        Raises:
            ValueError: naming the first length that does not match.
        """
        n, count, k = self.numel, self.count, self.rice_k
        if n >= 1 << 62:
            raise ValueError(f"mask of {n} entries is beyond what int64 positions can index")
        if not 0 <= count <= n:
            raise ValueError(f"mask code counts {count} entries in a tensor of {n}")
        if self.codec == "bitmap":
            if len(self.unary) != (n + 7) // 8 or self.remainders:
                raise ValueError(f"bitmap has {len(self.unary) + len(self.remainders)} bytes, expected {(n + 7) // 8} "
                                 f"for {n} entries")
            return
        if not 0 <= k <= _MAX_RICE_K:
            raise ValueError(f"mask code's rice_k must be in [0, {_MAX_RICE_K}], got {k}")
        if self.unary_bits < count:
            raise ValueError(f"mask code is inconsistent: {count} codes in a {self.unary_bits}-bit unary stream")
        if len(self.unary) != (self.unary_bits + 7) // 8:
            raise ValueError(f"mask code's unary stream has {len(self.unary)} bytes, its {self.unary_bits} bits "
                             f"need {(self.unary_bits + 7) // 8}")
        if len(self.remainders) != (count * k + 7) // 8:
            raise ValueError(f"mask code's remainder stream has {len(self.remainders)} bytes, {count} remainders of "
                             f"{k} bits need {(count * k + 7) // 8}")


def _count(params: dict[str, Any], name: str) -> int:
    """A length or count read from mask parameters: a non-negative JSON integer."""
    value = params[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"mask parameter {name} must be a non-negative integer, got {value!r}")
    return value


def entropy_bits_per_entry(density: float) -> float:
    """H(p) in bits: the floor for coding an i.i.d. mask of this density."""
    if density <= 0.0 or density >= 1.0:
        return 0.0
    p = float(density)
    return float(-p * np.log2(p) - (1.0 - p) * np.log2(1.0 - p))


def encode_mask(mask: torch.Tensor | np.ndarray) -> EncodedMask:
    """Code a boolean mask (True = kept) of any shape; exact for every mask."""
    flat = _as_flat_bool(mask)
    n = flat.size
    kept = int(np.count_nonzero(flat))
    coded_value = kept <= n - kept
    positions = np.flatnonzero(flat if coded_value else ~flat)  # (count,) int64
    gaps = np.diff(positions, prepend=-1) - 1  # (count,), each >= 0
    k, rice_bits = _best_rice_k(gaps)
    shape = tuple(int(d) for d in np.shape(mask))
    if rice_bits >= _BITMAP_BELOW * n:  # near 50 % density: the bitmap is as small and decodes faster
        return EncodedMask(shape, "bitmap", True, kept, 0, n, np.packbits(flat).tobytes(), b"")
    quotients = gaps >> k
    unary_bits = int(quotients.sum()) + gaps.size
    stream = np.zeros(unary_bits, dtype=np.uint8)
    stream[np.cumsum(quotients + 1) - 1] = 1  # the terminating 1 of each unary code
    if k:
        shifts = np.arange(k - 1, -1, -1, dtype=np.int64)  # big-endian: high bit first
        remainder_bits = ((gaps[:, None] >> shifts) & 1).astype(np.uint8)  # (count, k)
        remainders = np.packbits(remainder_bits.ravel()).tobytes()
    else:
        remainders = b""
    return EncodedMask(
        shape=shape,
        codec="rice-gaps",
        coded_value=bool(coded_value),
        count=int(gaps.size),
        rice_k=int(k),
        unary_bits=unary_bits,
        unary=np.packbits(stream).tobytes(),
        remainders=remainders,
    )


def decode_mask(encoded: EncodedMask) -> np.ndarray:
    """Inverse of `encode_mask`: a bool array of `encoded.shape`.

    Raises:
        ValueError: if the streams are inconsistent with the parameters (corrupt data).
    """
    if encoded.codec == "bitmap":
        return _decode_bitmap(encoded)
    positions = decode_positions(encoded)
    n = encoded.numel
    if encoded.coded_value:
        flat = np.zeros(n, dtype=bool)
        flat[positions] = True
    else:
        flat = np.ones(n, dtype=bool)
        flat[positions] = False
    return flat.reshape(encoded.shape)


def decode_positions(encoded: EncodedMask) -> np.ndarray:
    """Sorted flat indices (int64) of the entries equal to `encoded.coded_value`."""
    if encoded.codec == "bitmap":
        return np.flatnonzero(_decode_bitmap(encoded) == encoded.coded_value)
    encoded.check_lengths()
    count, k, n = encoded.count, encoded.rice_k, encoded.numel
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    stream = np.unpackbits(np.frombuffer(encoded.unary, dtype=np.uint8), count=encoded.unary_bits)
    ends = np.flatnonzero(stream)  # (count,) end bit of each unary code
    if ends.size != count or ends[-1] != encoded.unary_bits - 1:
        raise ValueError(f"unary stream holds {ends.size} codes, expected {count}")
    quotients = np.diff(ends, prepend=-1) - 1
    if int(quotients.max()) > (n - 1) >> k:  # (q << k) + r > n - 1: a gap past the end (checked before it can wrap)
        raise ValueError(f"mask code has a gap of at least {int(quotients.max())} << {k} entries, past the end of "
                         f"a tensor of {n}")
    gaps = quotients << k
    if k:
        bits = np.unpackbits(np.frombuffer(encoded.remainders, dtype=np.uint8), count=count * k)
        gaps |= _bits_to_ints(bits.reshape(count, k))
    if float(gaps.sum(dtype=np.float64)) + count > 2.0 * n:  # the sum below cannot wrap int64 either
        raise ValueError(f"mask code points past the end of a tensor of {n} entries")
    positions = np.cumsum(gaps + 1) - 1
    if positions[-1] >= n:
        raise ValueError(f"mask code points past the end: position {positions[-1]} >= numel {n}")
    return positions


def _as_flat_bool(mask: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        if mask.dtype != torch.bool:
            raise ValueError(f"mask must have dtype torch.bool, got {mask.dtype}")
        return mask.detach().cpu().contiguous().numpy().reshape(-1)
    array = np.asarray(mask)
    if array.dtype != np.bool_:
        raise ValueError(f"mask must have dtype bool, got {array.dtype}")
    return np.ascontiguousarray(array).reshape(-1)


def _decode_bitmap(encoded: EncodedMask) -> np.ndarray:
    n = encoded.numel
    if len(encoded.unary) != (n + 7) // 8 or encoded.remainders:
        raise ValueError(f"bitmap has {len(encoded.unary)} bytes, expected {(n + 7) // 8} for {n} entries")
    flat = np.unpackbits(np.frombuffer(encoded.unary, dtype=np.uint8), count=n).view(bool)
    if int(np.count_nonzero(flat)) != encoded.count:
        raise ValueError(f"bitmap holds {int(np.count_nonzero(flat))} kept entries, expected {encoded.count}")
    return flat.reshape(encoded.shape)


def _best_rice_k(gaps: np.ndarray) -> tuple[int, int]:
    """The k minimising the exact coded size sum(g >> k) + count * (k + 1), and that size in bits.

    The geometric-source optimum k ~ log2(mean gap * ln 2) seeds a small window that is then
    searched exactly, so skewed (structured) masks get their true best k too.
    """
    if gaps.size == 0:
        return 0, 0
    mean_gap = float(gaps.mean())
    guess = int(round(np.log2(max(mean_gap * np.log(2.0), 1.0))))
    candidates = range(max(0, guess - 2), min(_MAX_RICE_K, guess + 3) + 1)
    sizes = [int((gaps >> k).sum()) + gaps.size * (k + 1) for k in candidates]
    best = int(np.argmin(sizes))
    return candidates[best], sizes[best]


def _bits_to_ints(bits: np.ndarray) -> np.ndarray:
    """(count, k) big-endian bit rows -> (count,) int64, in byte-wide steps for speed."""
    count, k = bits.shape
    row_bytes = np.packbits(bits, axis=1)  # (count, ceil(k/8)), zero-padded on the right
    values = np.zeros(count, dtype=np.int64)
    for column in range(row_bytes.shape[1]):
        values = (values << 8) | row_bytes[:, column]
    return values >> ((-k) % 8)  # drop the right padding
