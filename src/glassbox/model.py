"""A small GPT-2-style character model you can look inside.

One model, two ways to run it: `forward` for training and generation (fast fused attention),
and `run_with_cache` for analysis, which runs the very same modules and also hands back every
intermediate activation under a readable name (hook points in the spirit of TransformerLens).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from glassbox.sampling import next_token_probs, sample_next

Cache = dict[str, Tensor]


@dataclass
class GPTConfig:
    vocab_size: int
    block_size: int = 128  # longest context the model sees (size of the position embedding)
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    dropout: float = 0.0
    bias: bool = False  # biases in Linear layers and LayerNorms

    def __post_init__(self):
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")


def _record(cache: Cache | None, name: str, tensor: Tensor) -> None:
    """Store a detached copy of an activation when the caller asked for a cache."""
    if cache is not None:
        cache[name] = tensor.detach()


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v at once
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, cache: Cache | None = None, name: str = "attn") -> Tensor:
        """Multi-head causal self-attention, computed one of two ways.

        Without a cache we call `F.scaled_dot_product_attention`, which uses a fused (flash)
        kernel on GPU and never materialises the T x T attention matrix: that is what makes
        training fast. But the matrix is exactly what analysis wants to see, so with a cache we
        compute it explicitly (q·kᵀ/√d_head, mask the future, softmax) and record it as
        `{name}.pattern`. Both use the same weights and agree to float precision (tested).
        """
        B, T, C = x.shape
        head_dim = C // self.n_head
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = (t.view(B, T, self.n_head, head_dim).transpose(1, 2) for t in (q, k, v))  # [B, H, T, hd]

        if cache is None:
            dropout_p = self.dropout if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        else:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(head_dim)
            future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(diagonal=1)
            pattern = scores.masked_fill(future, float("-inf")).softmax(dim=-1)  # exact 0 on the future
            _record(cache, f"{name}.pattern", pattern)
            y = self.attn_dropout(pattern) @ v

        y = y.transpose(1, 2).contiguous().view(B, T, C)  # put the heads side by side again
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LN transformer block: each sublayer reads a normalised copy and adds to the residual."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, cache: Cache | None = None, name: str = "block") -> Tensor:
        _record(cache, f"{name}.resid_pre", x)
        x = x + self.attn(self.ln_1(x), cache, f"{name}.attn")
        _record(cache, f"{name}.resid_mid", x)
        x = x + self.mlp(self.ln_2(x))
        _record(cache, f"{name}.resid_post", x)
        return x


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Tie input and output embeddings: one matrix both reads characters in and scores them
        # out, so the embedding we analyse is also the model's output vocabulary.
        self.lm_head.weight = self.wte.weight

        self.apply(self._init_weights)
        # Every block adds its two c_proj outputs to the residual stream; scaling them down keeps
        # the residual's variance from growing with depth (the GPT-2 recipe).
        for param_name, param in self.named_parameters():
            if param_name.endswith("c_proj.weight"):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self) -> int:
        """All parameters, the tied embedding counted once (`parameters()` yields it once)."""
        return sum(p.numel() for p in self.parameters())

    def forward(
        self, idx: Tensor, targets: Tensor | None = None, cache: Cache | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """idx [B, T] token ids -> (logits [B, T, V] for every position, loss or None).

        Pass an empty dict as `cache` to have every hook point recorded into it (see
        `run_with_cache`); leave it None for the fast path.
        """
        B, T = idx.shape
        if self.config.block_size < T:
            raise ValueError(
                f"sequence length {T} exceeds block_size {self.config.block_size}: "
                f"crop the context to its last {self.config.block_size} tokens"
            )
        tok_emb = self.wte(idx)  # [B, T, d]
        pos_emb = self.wpe(torch.arange(T, device=idx.device))  # [T, d], shared by the batch
        _record(cache, "embed", tok_emb)
        _record(cache, "pos_embed", pos_emb.expand(B, T, -1))
        x = self.drop(tok_emb + pos_emb)
        for i, block in enumerate(self.blocks):
            x = block(x, cache, f"blocks.{i}")
        logits = self.unembed(x, cache)
        _record(cache, "logits", logits)

        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss

    def unembed(self, resid: Tensor, cache: Cache | None = None) -> Tensor:
        """Final LayerNorm then the (tied) output matrix: residual [..., d] -> logits [..., V].

        The forward pass ends here, and the logit lens applies it to earlier layers' residuals,
        so "what would the model say if it stopped here" uses exactly the model's own readout.
        """
        normed = self.ln_f(resid)
        _record(cache, "ln_final", normed)
        return self.lm_head(normed)

    def run_with_cache(self, idx: Tensor) -> tuple[Tensor, Cache]:
        """Run the model and return (logits, cache of every hook point, all detached).

        Hook points: `embed`, `pos_embed`, `blocks.{i}.resid_pre`, `blocks.{i}.attn.pattern`
        [B, H, T, T], `blocks.{i}.resid_mid`, `blocks.{i}.resid_post`, `ln_final`, `logits`.
        Gradients are left to the caller: wrap the call in `torch.no_grad()` for analysis.
        """
        cache: Cache = {}
        logits, _ = self(idx, cache=cache)
        return logits, cache

    def configure_optimizer(
        self,
        weight_decay: float,
        learning_rate: float,
        betas: tuple[float, float],
        device_type: str,
    ) -> torch.optim.AdamW:
        """AdamW that decays only matrices (Linear weights, embeddings), not gains and biases.

        Decay pulls weights toward zero; that regularises matrices, but a LayerNorm gain of 0
        or a shrunken bias just removes capacity, so 1-D parameters are left alone.
        """
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        # The fused CUDA kernel updates every parameter in one launch; elsewhere torch picks.
        fused = {"fused": True} if device_type == "cuda" else {}
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, **fused)

    def flops_per_token(self) -> float:
        """Training FLOPs per token, for model FLOPs utilisation (MFU).

        A weight matrix with n entries costs 2n FLOPs per token going forward (one multiply,
        one add per entry) and about twice that going backward (gradients for the input and
        for the weight), so 6n in all; summed over every matrix that is 6N. N leaves out the
        position embedding, which is only looked up, never multiplied; the tied token
        embedding stays in because it is multiplied as lm_head. Attention adds matmuls with
        no weights: per layer and token, q·kᵀ and pattern·v each cost 2·d·T forward, so
        4·d·T forward and 12·d·T with the backward, i.e. 12·n_layer·n_embd·block_size
        (counting the full block, as if nothing were masked).
        """
        cfg = self.config
        matmul_params = self.num_params() - self.wpe.weight.numel()
        return 6 * matmul_params + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size

    @torch.no_grad()
    def generate(
        self,
        idx: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Extend idx [B, T] by max_new_tokens sampled tokens -> [B, T + max_new_tokens].

        The context is cropped to the last block_size tokens, since the model has no position
        embedding beyond that. Call `model.eval()` first if the model has dropout.
        """
        for _ in range(max_new_tokens):
            context = idx[:, -self.config.block_size :]
            logits, _ = self(context)
            probs = next_token_probs(logits[:, -1, :], temperature, top_k)
            idx = torch.cat([idx, sample_next(probs, generator)], dim=1)
        return idx
