"""Run pruned projections through sparse CSR matmuls where that is faster on this CPU.

Why: a 90 %-sparse weight still costs a full dense GEMM (pytorch #36214). On CPU, torch's CSR
kernel (MKL sparse BLAS) with int32 indices beats dense GEMM for the Transformer's shapes at
~90 % sparsity and decoding batch sizes, but loses at low sparsity or very large row counts
(anchors.md §5). Which side wins depends on the shape, the sparsity, the number of rows and the
machine, so "auto" times both on the spot (interleaved repetitions, medians) for each layer.

What is swapped:
- every ``nn.Linear`` -> ``SparseLinear`` (same ``weight``/``bias`` parameters, so the model's
  ``state_dict`` keeps its keys and values);
- in ``lightning_slt.model.transformer.MultiHeadAttention``, the fused q/k/v (self-attention)
  and k/v (cross-attention) projections, which that module computes with one GEMM over
  concatenated weights -> ``SparseMultiHeadAttention`` with one CSR matrix per fusion;
- the tied output projection ``Transformer.logits`` -> a CSR copy of ``embed.weight``
  (the embedding lookup itself stays dense).

Measured on the 2-core AVX-512 Xeon these sessions run on (torch 2.13 + MKL, 1 thread, 90 %
sparsity, 30 rows; ``benchmarks/sparse_inference.py`` records the full survey): CSR as
``csr @ x.T`` is 2-6x faster than dense ``F.linear``; COO, CSC, BSR (8x8) and ``x @ csr(W^T)``
are 3-20x *slower* than dense. int32 indices are within noise of int64 on the 512-2048
shapes and up to 2x faster on the 33k-row output projection (MKL's LP64 API takes them as
is). End to end, greedy decoding of Multi30k test2016 with transformer_base shapes runs
2.3-2.4x faster at 90 % and 3.1-3.4x at 95 % sparsity (two runs), with identical output.
With 2 threads on a machine shared with other jobs, CSR's OpenMP barriers made it slower
than dense: one more reason "auto" measures instead of assuming.
"""

import statistics
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_slt.model.transformer import MultiHeadAttention, Transformer

SparseMode = Literal["auto", "on", "off"]
_MODES = ("auto", "on", "off")


class CsrMatmul:
    """x (..., in) -> x W^T + b (..., out) with W held as CSR (int32 indices).

    A plain callable, not a Module, so holding one adds nothing to a model's state_dict. The
    result is a transposed view of the (out, N) product: copying it to row-major cost more
    end to end (18 % slower decoding) than letting the next op read it strided, and a chain
    such as fc1 -> relu -> fc2 feeds it back to MKL in exactly the layout it wants.
    """

    def __init__(self, weight: Tensor, bias: Tensor | None = None) -> None:
        weight = weight.detach()
        with warnings.catch_warnings():  # "sparse CSR support is in beta": we pin it by tests
            warnings.simplefilter("ignore")
            csr = weight.to_sparse_csr()
            self.csr = torch.sparse_csr_tensor(
                csr.crow_indices().to(torch.int32), csr.col_indices().to(torch.int32), csr.values(),
                size=weight.shape,
            )
        self.bias = None if bias is None else bias.detach()[:, None]  # (out, 1)
        self.out_features, self.in_features = weight.shape

    def __call__(self, x: Tensor) -> Tensor:
        rows = x.reshape(-1, self.in_features)  # (N, in)
        if self.bias is None:
            out = torch.sparse.mm(self.csr, rows.t())  # (out, N)
        else:
            out = torch.addmm(self.bias, self.csr, rows.t())  # (out, N)
        return out.t().reshape(*x.shape[:-1], self.out_features)  # (..., out)


class SparseLinear(nn.Module):
    """Drop-in replacement for an ``nn.Linear`` whose forward runs through ``CsrMatmul``.

    Keeps the original ``weight`` and ``bias`` parameters (so code that reads ``.weight`` and
    the ``state_dict`` are unchanged); the CSR copy is taken at construction, so later changes
    to the weight are not seen.
    """

    def __init__(self, linear: nn.Linear, matmul: CsrMatmul | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = linear.weight
        self.bias = linear.bias
        self.matmul = matmul if matmul is not None else CsrMatmul(linear.weight, linear.bias)
        self.train(linear.training)

    def forward(self, x: Tensor) -> Tensor:
        return self.matmul(x)

    def extra_repr(self) -> str:
        nnz = self.matmul.csr.values().numel()
        density = nnz / max(self.weight.numel(), 1)
        return f"in_features={self.in_features}, out_features={self.out_features}, density={density:.3f}"


@dataclass
class LayerChoice:
    """One projection's decision: its shape, sparsity, timing rows and the winner."""

    name: str
    out_features: int
    in_features: int
    sparsity: float
    rows: int
    dense_ms: float | None  # median of the timing ("auto" only)
    sparse_ms: float | None
    sparse: bool

    def as_dict(self) -> dict:
        return asdict(self)


def sparsify_(
    model: nn.Module,
    mode: SparseMode = "auto",
    rows: int = 32,
    encoder_rows: int | None = None,
    min_sparsity: float = 0.5,
    repeats: int = 15,
) -> list[LayerChoice]:
    """Swap pruned projections of `model` (in place) to CSR where it pays; return the choices.

    Args:
        model: any module; a ``lightning_slt`` ``Transformer`` also gets its fused attention
            projections and tied output projection handled.
        mode: "auto" times dense vs sparse per projection and keeps the faster, "on" makes
            every projection with sparsity >= `min_sparsity` sparse, "off" changes nothing.
        rows: input rows per call to time with: sentences (x beam) per decoding batch, the
            rows every decoder-step projection sees.
        encoder_rows: rows for projections that see whole source batches (encoder layers and
            cross-attention k/v): tokens per batch; defaults to `rows`.
        min_sparsity: projections sparser than this are candidates; denser ones stay dense
            (CSR never wins there and timing them wastes load time).
        repeats: interleaved timing repetitions per candidate ("auto"); projections of equal
            shape, sparsity (to 0.01) and rows share one timing.

    Raises:
        ValueError: on an unknown mode or non-positive rows/repeats.
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if rows < 1 or (encoder_rows is not None and encoder_rows < 1) or repeats < 1:
        raise ValueError(f"rows, encoder_rows and repeats must be >= 1, got {rows}, {encoder_rows}, {repeats}")
    if not 0.0 <= min_sparsity <= 1.0:
        raise ValueError(f"min_sparsity must be in [0, 1], got {min_sparsity}")
    if mode == "off":
        return []
    encoder_rows = encoder_rows or rows
    decide = _Chooser(mode, min_sparsity, repeats)
    with torch.no_grad():
        fused_only = _sparsify_attention(model, decide, rows, encoder_rows)
        for name, module in list(model.named_modules()):
            for child_name, child in list(module.named_children()):
                full_name = f"{name}.{child_name}" if name else child_name
                if type(child) is not nn.Linear or full_name in fused_only:
                    continue
                n_rows = encoder_rows if _in_encoder(full_name) else rows
                matmul = decide(full_name, child.weight, child.bias, n_rows)
                if matmul is not None:
                    setattr(module, child_name, SparseLinear(child, matmul))
        _sparsify_output_projection(model, decide, rows)
    return decide.choices


class _Chooser:
    """Decides, per projection, dense or CSR, and records each choice (`sparsify_`'s `decide`)."""

    def __init__(self, mode: SparseMode, min_sparsity: float, repeats: int) -> None:
        self.mode, self.min_sparsity, self.repeats = mode, min_sparsity, repeats
        self.choices: list[LayerChoice] = []
        self.timings: dict[tuple, tuple[float, float]] = {}  # same shape, sparsity and rows: time once

    def __call__(self, name: str, weight: Tensor, bias: Tensor | None, n_rows: int) -> CsrMatmul | None:
        """The CSR matmul to use for this projection, or None to keep it dense."""
        weight = weight.detach()
        sparsity = 1.0 - int(torch.count_nonzero(weight)) / max(weight.numel(), 1)
        choice = LayerChoice(name, weight.size(0), weight.size(1), round(sparsity, 4), n_rows, None, None, False)
        self.choices.append(choice)
        if sparsity < self.min_sparsity or weight.numel() == 0:
            return None
        matmul = CsrMatmul(weight, bias)
        if self.mode == "auto":
            key = (tuple(weight.shape), bias is not None, round(sparsity, 2), n_rows)
            if key not in self.timings:
                self.timings[key] = _time_dense_vs_sparse(weight, bias, matmul, n_rows, self.repeats)
            choice.dense_ms, choice.sparse_ms = self.timings[key]
            if choice.sparse_ms >= choice.dense_ms:
                return None
        choice.sparse = True
        return matmul


def _sparsify_attention(model: nn.Module, decide, rows: int, encoder_rows: int) -> set[str]:
    """Replace lightning_slt MultiHeadAttention modules whose fused projections win as CSR.

    Returns the names of the q/k/v ``nn.Linear`` modules that attention only reads through its
    fused projections (never calls), so that they are not swapped or timed on their own.
    """
    fused_only: set[str] = set()
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if type(child) is not MultiHeadAttention:
                continue
            full_name = f"{name}.{child_name}" if name else child_name
            cross = child_name == "cross_attn"
            read_fused = ("k_proj", "v_proj") if cross else ("q_proj", "k_proj", "v_proj")
            fused_only.update(f"{full_name}.{proj}" for proj in read_fused)
            if cross:  # k/v read the encoder memory: once per batch, over all source tokens
                fused = torch.cat([child.k_proj.weight, child.v_proj.weight])  # (2D, D)
                matmul = decide(f"{full_name}.kv(fused)", fused, None, encoder_rows)
            else:
                fused = torch.cat([child.q_proj.weight, child.k_proj.weight, child.v_proj.weight])  # (3D, D)
                n_rows = encoder_rows if _in_encoder(full_name) else rows
                matmul = decide(f"{full_name}.qkv(fused)", fused, None, n_rows)
            if matmul is not None:
                setattr(module, child_name, SparseMultiHeadAttention(child, matmul, cross))
    return fused_only


def _in_encoder(name: str) -> bool:
    """Whether a module name lies in an encoder (sees whole source batches, not decoding steps)."""
    return name.startswith("encoder.") or ".encoder." in name


def _sparsify_output_projection(model: nn.Module, decide, rows: int) -> None:
    """Give every lightning_slt Transformer in `model` a CSR ``logits`` (its tied embedding, (V, D))."""
    for name, module in list(model.named_modules()):
        if not isinstance(module, Transformer):
            continue
        prefix = f"{name}." if name else ""
        matmul = decide(f"{prefix}logits(embed.weight)", module.embed.weight, None, rows)
        if matmul is not None:
            # An instance attribute shadows the class method; the model's parameters are untouched.
            # Row-major logits: argmax / log_softmax over a strided vocabulary axis cost 3.6 ms a
            # step at 33k x 30 rows, the copy 0.4 ms.
            object.__setattr__(module, "logits", lambda hidden: matmul(hidden).contiguous())


def _time_dense_vs_sparse(weight: Tensor, bias: Tensor | None, matmul: CsrMatmul, rows: int,
                          repeats: int) -> tuple[float, float]:
    """Median milliseconds of dense F.linear and of `matmul` on a (rows, in) input, interleaved."""
    x = torch.randn(rows, weight.size(1))
    kernels = {"dense": lambda: F.linear(x, weight, bias), "sparse": lambda: matmul(x)}
    timings: dict[str, list[float]] = {"dense": [], "sparse": []}
    for kernel in (*kernels.values(), *kernels.values()):  # warm-up: allocator, MKL handles, caches
        kernel()
    for _ in range(repeats):
        for key, kernel in kernels.items():
            start = time.perf_counter()
            kernel()
            timings[key].append(time.perf_counter() - start)
    return round(statistics.median(timings["dense"]) * 1e3, 4), round(statistics.median(timings["sparse"]) * 1e3, 4)


class SparseMultiHeadAttention(MultiHeadAttention):
    """A ``MultiHeadAttention`` whose fused q/k/v (or cross-attention k/v) GEMM is one CSR matmul.

    Shares the original's ``q_proj``/``k_proj``/``v_proj``/``out_proj`` (which may themselves be
    ``SparseLinear``), so the state_dict is unchanged. Only the projection seams
    (``project_qkv`` / ``project_kv``) are overridden: the attention itself is the parent's;
    tests/export/test_sparse_linear.py pins the two to identical decoding outputs.
    """

    def __init__(self, dense: MultiHeadAttention, fused: CsrMatmul, cross: bool) -> None:
        nn.Module.__init__(self)  # not the parent's __init__: it would allocate fresh weights
        self.n_heads, self.attention_dropout = dense.n_heads, dense.attention_dropout
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = dense.q_proj, dense.k_proj, dense.v_proj, dense.out_proj
        self.fused, self.cross = fused, cross
        self.train(dense.training)  # attention dropout reads self.training

    def project_qkv(self, x: Tensor) -> Tensor:
        """Rows (N, D) -> [q | k | v] (N, 3D) through the CSR matmul (self-attention)."""
        if self.cross:
            return super().project_qkv(x)
        # contiguous: SDPA takes its fused kernel only for unit-stride head dims (else a slower math path)
        return self.fused(x).contiguous()

    def project_kv(self, memory: Tensor) -> Tensor:
        """Rows (N, D) -> [k | v] (N, 2D) through the CSR matmul (cross-attention memory)."""
        if not self.cross:
            return super().project_kv(memory)
        return self.fused(memory).contiguous()
