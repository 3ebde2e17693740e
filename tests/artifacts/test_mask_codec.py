"""Mask codec: exact round trips for every kind of mask, and size near the entropy floor."""

import numpy as np
import pytest
import torch

from lightning_slt.artifacts.mask_codec import EncodedMask, decode_mask, encode_mask, entropy_bits_per_entry

DENSITIES = [0.0, 1e-4, 0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98, 1.0]
SIZES = [0, 1, 2, 7, 8, 9, 1000, 4099]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("density", DENSITIES)
def test_round_trip_random_masks(size: int, density: float) -> None:
    rng = np.random.default_rng(size * 1000 + int(density * 100))
    for _ in range(3):
        mask = rng.random(size) < density
        encoded = encode_mask(mask)
        decoded = decode_mask(encoded)
        assert decoded.dtype == np.bool_ and decoded.shape == (size,)
        np.testing.assert_array_equal(decoded, mask)
        assert encoded.kept == int(mask.sum())
        rebuilt = EncodedMask.from_bytes(encoded.shape, encoded.params(), encoded.to_bytes())
        np.testing.assert_array_equal(decode_mask(rebuilt), mask)


@pytest.mark.parametrize(
    "mask",
    [
        torch.ones(3, 4, dtype=torch.bool),
        torch.zeros(3, 4, dtype=torch.bool),
        torch.zeros(0, 5, dtype=torch.bool),
        torch.tensor([True]),
        torch.tensor([False]),
        torch.arange(64).reshape(8, 8) % 8 == 0,  # one kept column
        torch.arange(64).reshape(8, 8) < 8,  # one kept row
        (torch.arange(4096) // 512) % 2 == 0,  # long runs of both kinds
        torch.eye(50, dtype=torch.bool),
        torch.ones(2, 3, 4, dtype=torch.bool).triu(),  # 3-d
    ],
    ids=["all-kept", "all-pruned", "empty", "one-kept", "one-pruned", "column", "row", "runs", "eye", "3d"],
)
def test_round_trip_structured_masks(mask: torch.Tensor) -> None:
    encoded = encode_mask(mask)
    decoded = decode_mask(encoded)
    assert decoded.shape == tuple(mask.shape)
    np.testing.assert_array_equal(decoded, mask.numpy())


def test_all_kept_and_all_pruned_cost_no_bytes() -> None:
    assert encode_mask(torch.ones(100, 100, dtype=torch.bool)).nbytes == 0
    assert encode_mask(torch.zeros(100, 100, dtype=torch.bool)).nbytes == 0


def test_bits_per_entry_below_one_and_near_entropy_at_90_percent_sparsity() -> None:
    generator = torch.Generator().manual_seed(0)
    mask = torch.rand(512, 2048, generator=generator) >= 0.9  # 10 % kept
    encoded = encode_mask(mask)
    floor = entropy_bits_per_entry(mask.float().mean().item())
    assert encoded.codec == "rice-gaps" and encoded.rice_k == 3
    assert encoded.bits_per_entry < 1.0
    assert floor < encoded.bits_per_entry < 1.02 * floor  # within 2 % of the entropy floor
    assert encoded.bits_per_entry == pytest.approx(0.4758, abs=0.002)


def test_dense_side_is_coded_above_half_density() -> None:
    """Above 50 % kept the pruned entries are coded, so 98 % kept costs what 2 % kept costs."""
    generator = torch.Generator().manual_seed(1)
    mask = torch.rand(1000, 1000, generator=generator) < 0.98
    encoded = encode_mask(mask)
    assert encoded.coded_value is False
    assert encoded.bits_per_entry < 1.02 * entropy_bits_per_entry(0.98)


def test_near_half_density_falls_back_to_a_bitmap() -> None:
    mask = torch.rand(100, 100, generator=torch.Generator().manual_seed(2)) < 0.5
    encoded = encode_mask(mask)
    assert encoded.codec == "bitmap" and encoded.nbytes == 1250
    np.testing.assert_array_equal(decode_mask(encoded), mask.numpy())


def test_entropy_floor_values() -> None:
    assert entropy_bits_per_entry(0.0) == 0.0 and entropy_bits_per_entry(1.0) == 0.0
    assert entropy_bits_per_entry(0.5) == 1.0
    assert entropy_bits_per_entry(0.1) == pytest.approx(0.468996, abs=1e-6)


def test_rejects_non_bool_masks() -> None:
    with pytest.raises(ValueError, match="mask must have dtype torch.bool, got torch.float32"):
        encode_mask(torch.ones(3))
    with pytest.raises(ValueError, match="mask must have dtype bool, got int64"):
        encode_mask(np.ones(3, dtype=np.int64))


def test_corrupt_streams_are_rejected() -> None:
    mask = torch.rand(200, generator=torch.Generator().manual_seed(3)) < 0.1
    encoded = encode_mask(mask)
    params = encoded.params()
    with pytest.raises(ValueError, match="mask data has 3 bytes"):
        EncodedMask.from_bytes(encoded.shape, params, b"abc")
    with pytest.raises(ValueError, match="unknown mask codec 'zip'"):
        EncodedMask.from_bytes(encoded.shape, {**params, "codec": "zip"}, encoded.to_bytes())
    with pytest.raises(ValueError, match="incomplete or malformed"):
        EncodedMask.from_bytes(encoded.shape, {"codec": "rice-gaps"}, encoded.to_bytes())
    zeroed = bytes(params["unary_nbytes"]) + encoded.remainders  # unary stream without any code end
    broken = EncodedMask.from_bytes(encoded.shape, params, zeroed)
    with pytest.raises(ValueError, match=f"unary stream holds 0 codes, expected {encoded.count}"):
        decode_mask(broken)


def test_declared_lengths_are_checked_against_the_streams() -> None:
    """Reliability round three: every length the parameters declare is its stream's, so nothing
    decoded from them is larger than the bytes present allow."""
    sparse = encode_mask(torch.rand(200, generator=torch.Generator().manual_seed(3)) < 0.1)
    bitmap = encode_mask(torch.rand(200, generator=torch.Generator().manual_seed(3)) < 0.5)
    assert (sparse.codec, bitmap.codec) == ("rice-gaps", "bitmap")
    rice, data = sparse.params(), sparse.to_bytes()
    cases = [
        (bitmap.shape, {**bitmap.params(), "count": 201}, bitmap.to_bytes(), "counts 201 entries in a tensor of 200"),
        ((2**30,), bitmap.params(), bitmap.to_bytes(), "bitmap has 25 bytes, expected 134217728 for 1073741824"),
        (sparse.shape, {**rice, "unary_bits": rice["unary_bits"] + 8}, data, "unary stream has \\d+ bytes, its \\d+ bits"),
        (sparse.shape, {**rice, "rice_k": rice["rice_k"] + 1}, data, "remainder stream has \\d+ bytes"),
        (sparse.shape, {**rice, "unary_bits": rice["count"] - 1}, data, "codes in a \\d+-bit unary stream"),
        (sparse.shape, {**rice, "rice_k": 63}, data, r"rice_k must be in \[0, 62\], got 63"),
        (sparse.shape, {**rice, "count": -1}, data, "count must be a non-negative integer, got -1"),
        (sparse.shape, {**rice, "count": 2.5}, data, "count must be a non-negative integer, got 2.5"),
        (sparse.shape, {**rice, "coded_value": "yes"}, data, "coded_value must be true or false, got 'yes'"),
        ((2**31, 2**31), rice, data, "beyond what int64 positions can index"),
    ]
    for shape, params, stream, message in cases:
        with pytest.raises(ValueError, match=message):
            EncodedMask.from_bytes(shape, params, stream)


def test_a_gap_past_the_end_is_refused_before_it_can_wrap() -> None:
    """Quotient 4 << 62 wraps to 0 in int64: it must be refused as a gap past the end, not read
    as "keep entry 0"."""
    wrapping = EncodedMask((1,), "rice-gaps", True, 1, 62, 5, np.packbits([0, 0, 0, 0, 1]).tobytes(), bytes(8))
    with pytest.raises(ValueError, match="mask code has a gap of at least 4 << 62 entries, past the end of a tensor of 1"):
        decode_mask(wrapping)
    past_end = EncodedMask((8,), "rice-gaps", True, 2, 2, 3, np.packbits([1, 0, 1]).tobytes(), np.packbits([0, 0, 1, 1]).tobytes())
    with pytest.raises(ValueError, match="mask code points past the end: position 8 >= numel 8"):
        decode_mask(past_end)  # gaps 0 and 7: positions 0 and 8
