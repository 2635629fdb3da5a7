"""Next-token loss by position: how a (RoPE-scaled) causal LM reads long text, past its trained context or not.

This is the test the position-interpolation and YaRN papers use for context scaling: one long token sequence,
one forward pass, and the mean negative log-likelihood of the tokens in each range of positions. A method that
extends the context keeps the loss flat beyond the trained length; plain RoPE's loss rises there. The
vocabulary projection is applied in chunks, so a 16k-token sequence never materialises its full logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["long_text", "plot_position_losses", "position_losses", "position_ranges"]


def position_ranges(length: int, edges: Sequence[int]) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` from increasing ``edges`` (clipped to ``length``; empty ranges dropped)."""
    if any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise ValueError(f"position edges must increase, got {list(edges)}")
    clipped = [min(max(e, 0), length) for e in edges]
    return [(a, b) for a, b in zip(clipped, clipped[1:], strict=False) if b > a]


def position_losses(model: Any, ids: torch.Tensor, edges: Sequence[int], chunk: int = 1024) -> list[dict[str, Any]]:
    """Mean next-token NLL (nats) of the token sequence ``ids`` (1-D) per range of target positions.

    Position ``p`` is the target token's index: its loss is ``-log P(ids[p] | ids[:p])`` (``p >= 1``).
    Returns one row per range: ``start``, ``end``, ``tokens``, ``loss``, ``perplexity``.
    """
    if ids.dim() != 1 or ids.numel() < 2:
        raise ValueError(f"ids must be one sequence of at least 2 tokens, got shape {tuple(ids.shape)}")
    device = next(model.parameters()).device
    ids = ids.to(device)
    with torch.no_grad():
        hidden = model.get_decoder()(input_ids=ids[None]).last_hidden_state[0]
        head = model.get_output_embeddings()
        nll = torch.empty(ids.numel(), dtype=torch.float64, device=device)
        nll[0] = float("nan")  # the first token has no prefix
        for s in range(0, ids.numel() - 1, chunk):
            e = min(s + chunk, ids.numel() - 1)
            logits = head(hidden[s:e]).float()
            nll[s + 1:e + 1] = F.cross_entropy(logits, ids[s + 1:e + 1], reduction="none").double()
    rows = []
    for a, b in position_ranges(ids.numel(), edges):
        part = nll[max(a, 1):b]
        if part.numel():
            loss = float(part.mean())
            rows.append({"start": a, "end": b, "tokens": part.numel(), "loss": loss,
                         "perplexity": float(torch.exp(torch.tensor(loss)))})
    return rows


def long_text(paragraphs: dict[str, list[str]] | Sequence[str], tokenizer: Any, length: int) -> torch.Tensor:
    """The first ``length`` tokens of the documents joined in order (``{title: paragraphs}`` or texts)."""
    docs = ["\n".join(p) for p in paragraphs.values()] if isinstance(paragraphs, dict) else list(paragraphs)
    ids: list[int] = []
    for doc in docs:
        ids += tokenizer(doc + "\n\n", add_special_tokens=False)["input_ids"]
        if len(ids) >= length:
            return torch.tensor(ids[:length])
    raise ValueError(f"the text holds only {len(ids)} tokens, fewer than the {length} asked for")


def plot_position_losses(by_method: dict[str, list[dict[str, Any]]], trained: int | None = None):
    """Loss per position range, one line per method; a dashed line marks the trained context (a
    ``matplotlib.figure.Figure``)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.2))
    ax = fig.subplots()
    for method, rows in by_method.items():
        ax.plot([(r["start"] + r["end"]) / 2000 for r in rows], [r["loss"] for r in rows], marker="o", label=method)
    if trained:
        ax.axvline(trained / 1000, color="grey", linestyle="--", linewidth=1)
        ax.text(trained / 1000, ax.get_ylim()[1], " trained context", va="top", fontsize=7, color="grey")
    ax.set_xlabel("target position (k tokens, range midpoint)")
    ax.set_ylabel("next-token loss (nats)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
