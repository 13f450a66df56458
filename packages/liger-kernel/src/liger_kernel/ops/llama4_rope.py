"""Rotary position embedding of Llama 4's text model, complex form (interleaved pairs).

q is (batch, seq, q_heads, head_dim) and k (batch, seq, k_heads, head_dim),
the layout Llama 4's attention rotates before its transpose; k may have fewer
heads than q (grouped-query attention). Consecutive pairs of the head
dimension are complex numbers, x[2j] + i x[2j+1] (j < head_dim / 2), and each
is multiplied by the frequency f[b, s, j] of its position:
    q'[2j] + i q'[2j+1] = (q[2j] + i q[2j+1]) * f[b, s, j];  k' likewise.
Written out with f = fr + i fi:
    q'[2j]   = q[2j] * fr - q[2j+1] * fi
    q'[2j+1] = q[2j] * fi + q[2j+1] * fr
f need not have unit modulus (Transformers scales it by the rope type's
attention factor), so this is a complex multiply, not only a rotation.

``freqs_cis`` holds f in one of two forms:
- complex (complex64 or complex128), shape (batch or 1, seq, head_dim / 2),
  as ``Llama4TextRotaryEmbedding`` returns it, or (rows, head_dim / 2) with
  rows >= seq, a table whose first seq rows are positions 0..seq-1 for every
  batch entry;
- real, the same shapes with a trailing dimension of 2 (fr, fi), as
  ``torch.view_as_real`` gives it, of a floating dtype.
Anything else is refused (TypeError for a dtype, ValueError for a shape).

Backward is the multiply by the conjugate: dq = dq' * conj(f) on the same
pairs, likewise dk; freqs_cis gets no gradient.
Computed in fp32 (fp64 when q, k or freqs_cis is fp64 or complex128); q' and
k' in the dtypes of q and k. ``BLOCK_SIZE`` is liger-kernel 0.8.5's tile-size
hint: None or a positive int, checked and not used (every backend sizes its
tiles from its device profile).
"""

from __future__ import annotations

import torch

from liger_kernel.ops._contract import (
    FLOAT_DTYPES,
    DispatchedFunction,
    require_int,
    require_ndim,
    require_same_device,
    require_tensor,
)

COMPLEX_DTYPES = (torch.complex64, torch.complex128)


def freqs_real_shape(freqs_cis: torch.Tensor) -> tuple[int, ...]:
    """freqs_cis's shape without the (fr, fi) dimension of its real form."""
    return tuple(freqs_cis.shape) if freqs_cis.is_complex() else tuple(freqs_cis.shape[:-1])


def _check_block_size(BLOCK_SIZE: int | None) -> None:
    if BLOCK_SIZE is None:
        return
    require_int("BLOCK_SIZE", BLOCK_SIZE)
    if BLOCK_SIZE < 1:
        raise ValueError(f"BLOCK_SIZE must be a positive int or None, got {BLOCK_SIZE}")


class LigerLlama4RopeFunction(DispatchedFunction):
    op = "llama4_rope"
    backward_reads = ("freqs_cis",)
    contract_args = ("BLOCK_SIZE",)

    @staticmethod
    def outputs(q, k, *_):
        return ((q.shape, q.dtype), (k.shape, k.dtype))

    @staticmethod
    def check(q: torch.Tensor, k: torch.Tensor, freqs_cis: torch.Tensor, BLOCK_SIZE: int | None = None) -> None:
        require_tensor("q", q)
        require_tensor("k", k)
        require_ndim("q", q, (4,))
        require_ndim("k", k, (4,))
        batch, seq, _, head_dim = q.shape
        if head_dim % 2:
            raise ValueError(f"q has odd head_dim {head_dim}; the complex form needs pairs")
        if k.shape[0] != batch or k.shape[1] != seq or k.shape[3] != head_dim:
            raise ValueError(
                f"k has shape {tuple(k.shape)}, incompatible with q {tuple(q.shape)}: both are "
                "(batch, seq, heads, head_dim) with the same batch, seq and head_dim"
            )
        if not isinstance(freqs_cis, torch.Tensor):
            raise TypeError(f"freqs_cis must be a torch.Tensor, got {type(freqs_cis).__name__}")
        if not freqs_cis.is_complex():
            try:
                require_tensor("freqs_cis", freqs_cis, FLOAT_DTYPES)
            except TypeError:
                raise TypeError(
                    f"freqs_cis has dtype {str(freqs_cis.dtype).replace('torch.', '')}; expected complex64 or "
                    "complex128, or a floating dtype with a trailing dimension of 2 (torch.view_as_real)"
                ) from None
            if freqs_cis.dim() == 0 or freqs_cis.shape[-1] != 2:
                raise ValueError(
                    f"freqs_cis is real with shape {tuple(freqs_cis.shape)}; its real form needs a trailing "
                    "dimension of 2 (real, imaginary), as torch.view_as_real gives"
                )
        elif freqs_cis.dtype not in COMPLEX_DTYPES:
            raise TypeError(
                f"freqs_cis has dtype {str(freqs_cis.dtype).replace('torch.', '')}; expected complex64 or complex128"
            )
        shape = freqs_real_shape(freqs_cis)
        half = head_dim // 2
        if len(shape) == 3:
            if shape[0] not in (1, batch) or shape[1] != seq or shape[2] != half:
                raise ValueError(
                    f"freqs_cis has shape {tuple(freqs_cis.shape)}; expected (1 or {batch}, {seq}, {half}) "
                    "(batch, seq, head_dim / 2), with a trailing 2 in its real form"
                )
        elif len(shape) == 2:
            if shape[0] < seq or shape[1] != half:
                raise ValueError(
                    f"freqs_cis has shape {tuple(freqs_cis.shape)}; a 2-D table needs at least {seq} rows "
                    f"(positions) of {half} frequencies (head_dim / 2), with a trailing 2 in its real form"
                )
        else:
            raise ValueError(
                f"freqs_cis has shape {tuple(freqs_cis.shape)}; expected (batch or 1, seq, head_dim / 2) or "
                "(positions, head_dim / 2), complex or with a trailing 2"
            )
        _check_block_size(BLOCK_SIZE)
        require_same_device("q", {"q": q, "k": k, "freqs_cis": freqs_cis})


def llama4_rope_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    freqs_cis: torch.Tensor,
    BLOCK_SIZE: int | None = None,
    imag_sign: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """0.8.5's launch of the Llama 4 rotation: ``(q', k')`` of
    :class:`LigerLlama4RopeFunction` with ``imag_sign=1.0``, and with
    ``imag_sign=-1.0`` the multiply by conj(freqs_cis) (what the backward
    applies to the gradients). Any other sign is refused: it would not be a
    rotation of either kind. Differentiable, as the op is."""
    if isinstance(imag_sign, bool) or not isinstance(imag_sign, (int, float)) or imag_sign not in (1.0, -1.0):
        raise ValueError(f"imag_sign must be 1.0 (multiply by freqs_cis) or -1.0 (by its conjugate), got {imag_sign!r}")
    if imag_sign < 0 and isinstance(freqs_cis, torch.Tensor):
        if freqs_cis.is_complex():
            freqs_cis = freqs_cis.conj()
        elif freqs_cis.dim() and freqs_cis.shape[-1] == 2:
            freqs_cis = torch.stack((freqs_cis[..., 0], -freqs_cis[..., 1]), dim=-1)
    return LigerLlama4RopeFunction.apply(q, k, freqs_cis, BLOCK_SIZE)


def check_llama4_vision_rope(query: torch.Tensor, key: torch.Tensor, freqs_ci: torch.Tensor) -> None:
    """The argument checks of :func:`llama4_vision_rope`, in its own layout."""
    require_tensor("query", query)
    require_tensor("key", key)
    require_ndim("query", query, (4,))
    require_ndim("key", key, (4,))
    batch, seq, _, head_dim = query.shape
    if head_dim % 2:
        raise ValueError(f"query has odd head_dim {head_dim}; the complex form needs pairs")
    if key.shape[0] != batch or key.shape[1] != seq or key.shape[3] != head_dim:
        raise ValueError(
            f"key has shape {tuple(key.shape)}, incompatible with query {tuple(query.shape)}: both are "
            "(batch, seq, heads, head_dim) with the same batch, seq and head_dim"
        )
    if not isinstance(freqs_ci, torch.Tensor):
        raise TypeError(f"freqs_ci must be a torch.Tensor, got {type(freqs_ci).__name__}")
    if freqs_ci.dtype not in COMPLEX_DTYPES + FLOAT_DTYPES:
        raise TypeError(
            f"freqs_ci has dtype {str(freqs_ci.dtype).replace('torch.', '')}; expected complex64 or complex128 "
            "(or a floating dtype: the real frequencies of a buffer cast to a real dtype)"
        )
    half = head_dim // 2
    # the sizes other than 1 before the last: exactly seq (none when seq is 1)
    positions = [n for n in freqs_ci.shape[:-1] if n != 1]
    if freqs_ci.dim() == 0 or freqs_ci.shape[-1] != half or positions != ([seq] if seq != 1 else []):
        raise ValueError(
            f"freqs_ci has shape {tuple(freqs_ci.shape)}; expected ({seq}, {half}) (seq, head_dim / 2 of query), "
            f"with any dimensions of size 1 before the last, as Llama4VisionRotaryEmbedding's ({seq}, 1, {half})"
        )
    require_same_device("query", {"query": query, "key": key, "freqs_ci": freqs_ci})


def llama4_vision_rope(
    query: torch.Tensor, key: torch.Tensor, freqs_ci: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Llama 4's vision rotary embedding (Transformers' ``vision_apply_rotary_emb``),
    a layout adapter over :class:`LigerLlama4RopeFunction`.

    query and key are (batch, seq, heads, head_dim) (the image tiles, each
    seq patches and a class token); freqs_ci holds one frequency f[s, j] per
    position and pair, (seq, head_dim / 2) with any dimensions of size 1
    before the last (``Llama4VisionRotaryEmbedding`` gives (seq, 1, head_dim / 2)),
    read in that order as Transformers' view does, and broadcast over batch and
    heads. The math is the op's above: pairs (x[2j], x[2j+1]) times f[s, j].

    freqs_ci is complex64 or complex128, or real: a model cast to a real dtype
    (``model.to(torch.bfloat16)``) casts the complex buffer too, keeping the
    real parts only, and Transformers then multiplies each pair by that real
    f, which is the op's multiply by f + 0i; it is done so here (the
    imaginary zeros are added to the table, not to query and key).

    Rounding, as Transformers' function does it: query and key are taken to
    fp32 and multiplied in the precision of the promotion of complex64 with
    freqs_ci's dtype (complex128 for complex128 or float64 frequencies, else
    complex64); query' and key' are rounded once to the dtypes of query and
    key. The op computes at that precision and reads fp16, bf16 and fp32
    query and key as they are; float64 ones are rounded to fp32 first, as
    there. Backward is the op's (the multiply by conj(f)); freqs_ci gets no
    gradient. Bad shapes, dtypes and devices raise ``ValueError``/``TypeError``
    naming the argument, in this layout.
    """
    check_llama4_vision_rope(query, key, freqs_ci)
    math_in_fp64 = freqs_ci.dtype in (torch.complex128, torch.float64)
    table = freqs_ci.reshape(1, query.shape[1], freqs_ci.shape[-1])
    if not table.is_complex():
        table = torch.stack((table, torch.zeros_like(table)), dim=-1)

    def rounded(x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.float64:
            return x
        return x.float().double() if math_in_fp64 else x.float()

    query_out, key_out = LigerLlama4RopeFunction.apply(rounded(query), rounded(key), table)
    return query_out.to(query.dtype), key_out.to(key.dtype)
