"""Statistics of masks and weights: the sparsity report, mask overlap (Jaccard) and sign agreement."""

import pytest
import torch

from lightning_slt.pruning import mask_jaccard, sign_agreement, sparsity_report


def test_stats_report_jaccard_and_sign_agreement():
    masks = {"a": torch.tensor([True, False, True, True]), "b": torch.tensor([[False, False], [True, True]])}
    r = sparsity_report(masks, total_parameters=10)
    assert r["per_tensor"] == {"a": 0.25, "b": 0.5}
    assert r["global"] == 3 / 8 and r["pruned"] == 3 and r["remaining"] == 7
    other = {"a": torch.tensor([True, True, False, True]), "b": masks["b"]}
    assert mask_jaccard(masks, other) == pytest.approx(4 / 6)
    w = {"a": torch.tensor([1.0, 0.0, -2.0, 3.0])}
    ref = {"a": torch.tensor([1.0, 5.0, 2.0, 3.0])}
    assert sign_agreement(w, ref, {"a": masks["a"]}) == pytest.approx(2 / 3)
