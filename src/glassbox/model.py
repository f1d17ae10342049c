"""A small GPT-2-style character model you can look inside.

One model, two ways to run it: `forward` for training and generation (fast fused attention),
and `run_with_cache` for analysis, which runs the very same modules and also hands back every
intermediate activation under a readable name (hook points in the spirit of TransformerLens).
The same hook points are where an experiment can intervene: `interventions` maps a hook name to
a function that edits the activation there (add a steering vector, patch in another prompt's
state, ablate a head; glassbox/edits.py builds them), in a forward pass and during generation.
Generation itself (the prefill, the decode steps through the KV cache, the draws) is
glassbox/generation.py; the model only knows how to run the new tokens against a `KVCache`.

The defaults are GPT-2's recipe (learned positions, LayerNorm, GELU MLP); `pos_encoding`, `norm`
and `mlp` swap in the parts modern LLMs use instead (RoPE, RMSNorm, SwiGLU), one at a time or all
together (conf/model/llama-style.yaml), so their effect on what the model learns can be compared.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from glassbox import hooks

Cache = dict[str, Tensor]
# Hook name -> a function of the activation there that returns what the model carries on with.
Interventions = Mapping[str, Callable[[Tensor], Tensor]]

POS_ENCODINGS = ("learned", "sinusoidal", "rope", "none")
NORMS = ("layernorm", "rmsnorm")
NORM_NAMES = {"layernorm": "LayerNorm", "rmsnorm": "RMSNorm"}  # as papers and torch spell them
MLPS = ("gelu", "swiglu")
ANGLE_BASE = 10000  # the positions' wavelengths grow up to 2π·ANGLE_BASE (RoPE's "theta", as in the transformer paper)
RMSNORM_EPS = 1e-5  # added to the mean square before the square root, so a zero vector divides by no zero


@dataclass
class GPTConfig:
    vocab_size: int
    block_size: int = 128  # longest context the model sees (size of the position embedding)
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    dropout: float = 0.0
    bias: bool = False  # biases in Linear layers and LayerNorms (RMSNorm never has one)
    # How the model knows where a token is: a learned table added to the input (GPT-2), a fixed
    # sinusoidal one added to the input, rotations of q and k in every layer (rope), or nothing
    # but the causal mask (none, "NoPE").
    pos_encoding: str = "learned"
    norm: str = "layernorm"  # layernorm | rmsnorm
    mlp: str = "gelu"  # gelu (4·n_embd hidden) | swiglu (see swiglu_hidden_size)
    # Key/value heads (Llama's num_key_value_heads): None or n_head gives every query head its own
    # keys and values (GPT-2); fewer makes groups of n_head / n_kv_head query heads share one
    # (grouped-query attention), 1 makes all share one (multi-query). Only the KV cache shrinks:
    # patterns and head outputs stay one per query head.
    n_kv_head: int | None = None

    def __post_init__(self):
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.n_kv_head is not None and not (self.n_kv_head >= 1 and self.n_head % self.n_kv_head == 0):
            divisors = [d for d in range(1, self.n_head + 1) if self.n_head % d == 0]
            raise ValueError(
                f"model.n_kv_head ({self.n_kv_head}) must divide n_head ({self.n_head}), so that every key/value "
                f"head serves the same number of query heads: use one of {', '.join(map(str, divisors))} "
                f"(or null for n_head)"
            )
        for key, options in (("pos_encoding", POS_ENCODINGS), ("norm", NORMS), ("mlp", MLPS)):
            if getattr(self, key) not in options:
                raise ValueError(f"model.{key} must be one of {', '.join(options)} (got {getattr(self, key)!r})")
        head_dim = self.n_embd // self.n_head
        if self.pos_encoding == "rope" and head_dim % 2:
            raise ValueError(
                f"model.pos_encoding=rope rotates pairs of dimensions, so the head size n_embd / n_head "
                f"must be even (got {self.n_embd} / {self.n_head} = {head_dim})"
            )

    @property
    def kv_heads(self) -> int:
        """How many key/value heads the attention has (n_kv_head, or n_head when it is None)."""
        return self.n_kv_head or self.n_head

    def kv_groups(self) -> list[list[int]]:
        """The query heads that read each key/value head: [[0, 1], [2, 3]] for 4 heads sharing 2."""
        group = self.n_head // self.kv_heads
        return [list(range(kv * group, (kv + 1) * group)) for kv in range(self.kv_heads)]

    def kv_cache_bytes(self, n_tokens: int, batch: int = 1, bytes_per_value: int = 4) -> int:
        """The KV cache's size for n_tokens tokens of each of `batch` sequences (float32 by default):
        a key and a value vector of head size per layer, key/value head and token."""
        head_dim = self.n_embd // self.n_head
        return 2 * self.n_layer * self.kv_heads * head_dim * n_tokens * batch * bytes_per_value


def describe_heads(n_head: int, n_kv_head: int | None) -> str:
    """ "4 heads", or how the query heads share key/value heads: "4 heads sharing 2 key/value heads"."""
    if n_kv_head is None or n_kv_head == n_head:
        return f"{n_head} heads"
    kind = "multi-query" if n_kv_head == 1 else "grouped-query"
    return f"{n_head} heads sharing {n_kv_head} key/value head{'s' if n_kv_head > 1 else ''} ({kind})"


class Hooks:
    """What one forward pass does at its hook points: record into `cache`, edit with `interventions`.

    One object carried through the blocks, which name their own hook points (glassbox/hooks.py
    spells every name). Without a cache and interventions (training, plain generation) each hook
    point hands its activation back untouched.
    """

    def __init__(self, cache: Cache | None = None, interventions: Interventions | None = None):
        self.cache = cache
        self.interventions = interventions

    def __call__(self, x: Tensor, name: str) -> Tensor:
        """The hook point `name`: the caller's edit of x, if any, then its copy in the cache.

        Editing before recording means the cache holds what the rest of the model actually read.
        """
        if self.interventions is not None and name in self.interventions:
            x = self.interventions[name](x)
        if self.cache is not None:
            self.cache[name] = x.detach()
        return x

    def wants(self, name: str) -> bool:
        """Whether the activation `name` is recorded or edited, so it must be computed."""
        return self.cache is not None or (self.interventions is not None and name in self.interventions)


# ---------------------------------------------------------------- positions


def position_angles(positions: Tensor, dim: int) -> Tensor:
    """The angle of each dimension pair at each position: positions [...] -> [..., ceil(dim / 2)].

    Pair i turns by pos / 10000^(2i/dim): the first pair once every 2π positions, the last almost
    not at all, like the hands of a clock, so every position gets its own combination of angles.
    The sinusoidal table writes sin and cos of these angles into the input (dim = n_embd); RoPE
    rotates each pair of q and k by them (dim = head size).
    """
    two_i = torch.arange(0, dim, 2, dtype=torch.float32, device=positions.device)
    return positions.float()[..., None] / ANGLE_BASE ** (two_i / dim)


def sinusoidal_table(n_positions: int, dim: int) -> Tensor:
    """[n_positions, dim]: PE(pos, 2i) = sin(pos / 10000^(2i/dim)), PE(pos, 2i+1) = cos(pos / 10000^(2i/dim))."""
    angles = position_angles(torch.arange(n_positions), dim)
    table = torch.zeros(n_positions, dim)
    table[:, 0::2] = angles.sin()
    table[:, 1::2] = angles[:, : dim // 2].cos()  # an odd dim has one sin column more than cos
    return table


class SinusoidalPositions(nn.Module):
    """The fixed position vectors of the original transformer, looked up like the learned `wpe`."""

    def __init__(self, n_positions: int, dim: int):
        super().__init__()
        # A buffer, not a parameter: it follows .to(device) but is not trained, and not saved
        # (persistent=False) since it is the same formula every time.
        self.register_buffer("table", sinusoidal_table(n_positions, dim), persistent=False)

    def forward(self, positions: Tensor) -> Tensor:
        return self.table[positions]


def apply_rope(x: Tensor, positions: Tensor) -> Tensor:
    """Rotary position embedding: turn each (2i, 2i+1) pair of x [B, H, T, hd] by its angle at positions [T].

    A query rotated by angle(m) dotted with a key rotated by angle(n) depends only on m - n, so
    attention scores see relative positions, and nothing is added to the residual stream.
    """
    angles = position_angles(positions, x.size(-1))  # [T, hd / 2]
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)  # x may be bfloat16 under autocast
    even, odd = x[..., 0::2], x[..., 1::2]
    rotated = torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1)  # [B, H, T, hd / 2, 2]
    return rotated.flatten(-2)  # the pairs back side by side: 0, 1, 2, 3, ...


# ---------------------------------------------------------------- attention and its KV cache


class KVCache:
    """One layer's keys and values [B, H_kv, T, hd] for every token generated so far.

    Why it exists: in a causal model a token's keys and values never change once computed (it
    never sees later tokens), yet generation without a cache recomputes them for the whole
    context at every step. With the cache, the prompt is run once (prefill) and each later step
    runs only the newest token (decode), whose query attends to the stored keys and values.
    It holds the n_kv_head key/value heads, not one per query head: grouped-query attention
    shrinks it by n_head / n_kv_head.
    """

    def __init__(self):
        self.keys: Tensor | None = None
        self.values: Tensor | None = None

    def __len__(self) -> int:
        """How many tokens are cached (the absolute position the next token will have)."""
        return 0 if self.keys is None else self.keys.size(2)

    @property
    def nbytes(self) -> int:
        """The memory its keys and values take."""
        if self.keys is None:
            return 0
        return self.keys.numel() * self.keys.element_size() + self.values.numel() * self.values.element_size()

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add the new tokens' k and v [B, H_kv, T_new, hd]; return the keys and values of all tokens so far."""
        if self.keys is not None:
            k = torch.cat([self.keys, k], dim=2)
            v = torch.cat([self.values, v], dim=2)
        self.keys, self.values = k, v
        return k, v


def key_is_future(n_queries: int, n_keys: int, device: torch.device) -> Tensor:
    """[n_queries, n_keys] mask, True where a key comes after its query.

    The queries are the last n_queries of the n_keys tokens (the new tokens after the cached ones),
    so query i sits at position n_keys - n_queries + i.
    """
    return torch.ones(n_queries, n_keys, dtype=torch.bool, device=device).triu(diagonal=n_keys - n_queries + 1)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig, layer: int):
        super().__init__()
        self.n_head = config.n_head
        self.n_kv_head = config.kv_heads
        self.n_embd = config.n_embd
        self.kv_width = self.n_kv_head * (config.n_embd // config.n_head)  # keys (or values) of every kv head
        self.dropout = config.dropout
        self.rope = config.pos_encoding == "rope"
        # q for every head, k and v for the key/value heads, all at once: 3·n_embd wide without
        # grouping (GPT-2's c_attn, so its snapshots still load), narrower with it.
        self.c_attn = nn.Linear(config.n_embd, config.n_embd + 2 * self.kv_width, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        # Its hook points, named once: blocks.{layer}.attn.q_rot, ... (glassbox/hooks.py)
        self.hook_q_rot = hooks.act_name("q_rot", layer)
        self.hook_k_rot = hooks.act_name("k_rot", layer)
        self.hook_pattern = hooks.act_name("pattern", layer)
        self.hook_head_out = hooks.act_name("head_out", layer)

    def forward(self, x: Tensor, positions: Tensor, hooked: Hooks, kv_cache: KVCache | None = None) -> Tensor:
        """Multi-head causal self-attention of x [B, T, d] at absolute positions [T], two ways.

        Without a cache we call `F.scaled_dot_product_attention`, which uses a fused (flash)
        kernel on GPU and never materialises the T x T attention matrix: that is what makes
        training fast. But the matrix is exactly what analysis wants to see, so with a cache we
        compute it explicitly (q·kᵀ/√d_head, mask the future, softmax) and record it as
        `blocks.{i}.attn.pattern`. Both use the same weights and agree to float precision (tested).

        With a `kv_cache` (generation), x holds only the new tokens: their keys and values are
        appended to the cache and their queries attend to every token so far. An intervention on
        the pattern needs the matrix too, so it takes the explicit way.

        With fewer key/value heads than query heads, k and v are computed (and cached) for the
        key/value heads only and each is then shared by its group of query heads.
        """
        B, T, C = x.shape
        head_dim = C // self.n_head
        q, k, v = self.c_attn(x).split([self.n_embd, self.kv_width, self.kv_width], dim=2)
        q = q.view(B, T, self.n_head, head_dim).transpose(1, 2)  # [B, H, T, hd]
        k, v = (t.view(B, T, self.n_kv_head, head_dim).transpose(1, 2) for t in (k, v))  # [B, H_kv, T, hd]
        if self.rope:
            # Keys are rotated at their own absolute position before they are cached, so a cached
            # key never needs touching again.
            q = hooked(apply_rope(q, positions), self.hook_q_rot)
            k = hooked(apply_rope(k, positions), self.hook_k_rot)
        if kv_cache is not None:
            k, v = kv_cache.append(k, v)  # [B, H_kv, T_cached + T, hd]
        k, v = self.share_kv(k), self.share_kv(v)  # [B, H, T_cached + T, hd]

        if not hooked.wants(self.hook_pattern):
            y = self._fused_attention(q, k, v)
        else:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(head_dim)
            future = key_is_future(T, k.size(2), x.device)
            pattern = scores.masked_fill(future, float("-inf")).softmax(dim=-1)  # exact 0 on the future
            pattern = hooked(pattern, self.hook_pattern)
            y = self.attn_dropout(pattern) @ v

        y = hooked(y.transpose(1, 2), self.hook_head_out)  # [B, T, H, hd]: one vector per head
        return self.resid_dropout(self.c_proj(y.reshape(B, T, C)))  # the heads side by side, then mixed

    def share_kv(self, kv: Tensor) -> Tensor:
        """Key/value heads [B, H_kv, T, hd] -> one per query head [B, H, T, hd]: query head h reads
        key/value head h // (H / H_kv), so neighbouring query heads form a group (Llama's order,
        `GPTConfig.kv_groups`).

        A copy (repeat_interleave), after the cache: the cache keeps only H_kv heads. Without
        grouping there is nothing to share and the tensor passes through untouched.
        """
        group = self.n_head // self.n_kv_head
        return kv if group == 1 else kv.repeat_interleave(group, dim=1)

    def _fused_attention(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """softmax(q·kᵀ/√d_head) v with the fused kernel, masking whatever each query must not see."""
        dropout_p = self.dropout if self.training else 0.0
        n_new, n_keys = q.size(2), k.size(2)
        if n_new == n_keys:  # training, or a prompt into an empty KV cache: plain causal attention
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        if n_new == 1:
            # One decode step: the newest token may see every key, so no mask. (is_causal=True would
            # be wrong: torch aligns its causal mask to the top-left, letting it see only key 0.)
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        # Several new tokens after cached ones: each sees the cache and the new tokens up to itself.
        allowed = ~key_is_future(n_new, n_keys, q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout_p)


# ---------------------------------------------------------------- MLPs and norms


class MLP(nn.Module):
    """GPT-2's MLP: widen to 4·n_embd, GELU, project back."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


def swiglu_hidden_size(n_embd: int) -> int:
    """SwiGLU's hidden width: 8·n_embd/3 rounded to the nearest multiple of 8 (at least 8).

    SwiGLU has three n_embd x hidden matrices where the GELU MLP has two n_embd x 4·n_embd ones;
    hidden = 2/3 · 4·n_embd keeps the parameter count near the GELU MLP's 8·n_embd² (LLaMA's
    rule), and multiples of 8 suit GPU matrix kernels. n_embd 256 -> 680, 384 -> 1024.
    """
    return max(8, 8 * round(n_embd / 3))


class SwiGLU(nn.Module):
    """The LLaMA MLP: a SiLU "gate" decides, feature by feature, how much of c_fc's output passes."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        hidden = swiglu_hidden_size(config.n_embd)
        self.c_fc = nn.Linear(config.n_embd, hidden, bias=config.bias)
        self.c_gate = nn.Linear(config.n_embd, hidden, bias=config.bias)
        self.c_proj = nn.Linear(hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(F.silu(self.c_gate(x)) * self.c_fc(x)))


class RMSNorm(nn.Module):
    """LayerNorm without centring: divide each vector by its root mean square, then a learned gain.

    Skipping the mean (and the bias) is cheaper and works as well in practice, which is why LLaMA uses it.
    """

    def __init__(self, dim: int, eps: float = RMSNORM_EPS):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        # In float32 even under bfloat16 autocast: the mean of squares loses too much precision otherwise.
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


def make_norm(config: GPTConfig) -> nn.Module:
    if config.norm == "rmsnorm":
        return RMSNorm(config.n_embd)
    return nn.LayerNorm(config.n_embd, bias=config.bias)


# ---------------------------------------------------------------- the model


class Block(nn.Module):
    """Pre-norm transformer block: each sublayer reads a normalised copy and adds to the residual."""

    def __init__(self, config: GPTConfig, layer: int):
        super().__init__()
        self.ln_1 = make_norm(config)
        self.attn = CausalSelfAttention(config, layer)
        self.ln_2 = make_norm(config)
        self.mlp = SwiGLU(config) if config.mlp == "swiglu" else MLP(config)
        # Its hook points, named once: blocks.{layer}.resid_pre, ... (glassbox/hooks.py)
        self.hook_resid_pre = hooks.act_name("resid_pre", layer)
        self.hook_attn_out = hooks.act_name("attn_out", layer)
        self.hook_resid_mid = hooks.act_name("resid_mid", layer)
        self.hook_mlp_out = hooks.act_name("mlp_out", layer)
        self.hook_resid_post = hooks.act_name("resid_post", layer)

    def forward(self, x: Tensor, positions: Tensor, hooked: Hooks, kv_cache: KVCache | None = None) -> Tensor:
        x = hooked(x, self.hook_resid_pre)
        x = x + hooked(self.attn(self.ln_1(x), positions, hooked, kv_cache), self.hook_attn_out)
        x = hooked(x, self.hook_resid_mid)
        x = x + hooked(self.mlp(self.ln_2(x)), self.hook_mlp_out)
        return hooked(x, self.hook_resid_post)


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        # What is added to the input to say where each token is; rope and none add nothing.
        self.wpe: nn.Module | None = None
        if config.pos_encoding == "learned":
            self.wpe = nn.Embedding(config.block_size, config.n_embd)
        elif config.pos_encoding == "sinusoidal":
            self.wpe = SinusoidalPositions(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config, layer) for layer in range(config.n_layer))
        self.ln_f = make_norm(config)
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
        self,
        idx: Tensor,
        targets: Tensor | None = None,
        cache: Cache | None = None,
        kv_cache: list[KVCache] | None = None,
        interventions: Interventions | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """idx [B, T] token ids -> (logits [B, T, V] for every position, loss or None).

        Pass an empty dict as `cache` to have every hook point recorded into it (see
        `run_with_cache`); leave it None for the fast path. `kv_cache` (one `KVCache` per layer,
        from `glassbox.generation.new_kv_cache`) is for generation: idx then holds only the tokens
        after the cached ones, and they sit at the absolute positions that follow them.

        `interventions` maps hook names (`hook_points`) to edits: each is called on the
        activation at its hook point, for the tokens of this call (with a `kv_cache`, the new
        ones only), and the model carries on with what it returns. The loss is that of the
        edited model.
        """
        B, T = idx.shape
        start = 0 if kv_cache is None else len(kv_cache[0])
        if start + T > self.config.block_size:
            raise ValueError(
                f"sequence length {start + T} exceeds block_size {self.config.block_size}: "
                f"crop the context to its last {self.config.block_size} tokens"
            )
        if interventions:
            self.check_hook_points(interventions)
        hooked = Hooks(cache, interventions)
        positions = torch.arange(start, start + T, device=idx.device)
        x = hooked(self.wte(idx), hooks.EMBED)  # [B, T, d]
        if self.wpe is not None:
            # [T, d], shared by the batch: expanded (a view, no copy) so that it is one per sequence like x
            x = x + hooked(self.wpe(positions).expand(B, T, -1), hooks.POS_EMBED)
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, positions, hooked, None if kv_cache is None else kv_cache[i])
        logits = hooked(self.unembed(x, cache, interventions), hooks.LOGITS)

        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss

    def unembed(self, resid: Tensor, cache: Cache | None = None, interventions: Interventions | None = None) -> Tensor:
        """Final norm then the (tied) output matrix: residual [..., d] -> logits [..., V].

        The forward pass ends here, and the logit lens applies it to earlier layers' residuals,
        so "what would the model say if it stopped here" uses exactly the model's own readout.
        """
        hooked = Hooks(cache, interventions)
        return self.lm_head(hooked(self.ln_f(resid), hooks.LN_FINAL))

    def run_with_cache(self, idx: Tensor) -> tuple[Tensor, Cache]:
        """Run the model and return (logits, cache of every hook point, all detached).

        Hook points: `embed`, `pos_embed` (learned and sinusoidal only: rope and none add no
        position vector to the input), `blocks.{i}.resid_pre`, `blocks.{i}.attn.q_rot` and
        `blocks.{i}.attn.k_rot` [B, H, T, hd] (rope only: q and k after rotation),
        `blocks.{i}.attn.pattern` [B, H, T, T], `blocks.{i}.attn.head_out` [B, T, H, hd],
        `blocks.{i}.attn_out`, `blocks.{i}.resid_mid`, `blocks.{i}.mlp_out`, `blocks.{i}.resid_post`,
        `ln_final`, `logits` (glassbox/hooks.py). Gradients are left to the caller: wrap the call
        in `torch.no_grad()` for analysis.
        """
        cache: Cache = {}
        logits, _ = self(idx, cache=cache)
        return logits, cache

    def hook_points(self) -> list[str]:
        """This model's hook points in forward order: what `run_with_cache` records and `interventions` may edit."""
        adds_position = self.config.pos_encoding in ("learned", "sinusoidal")
        return hooks.hook_points(self.config.n_layer, adds_position, self.config.pos_encoding == "rope")

    def check_hook_points(self, interventions: Interventions) -> None:
        """Raise a ValueError naming any intervention whose hook point this model does not have.

        Otherwise a misspelt name would silently change nothing.
        """
        points = self.hook_points()
        unknown = [name for name in interventions if name not in points]
        if unknown:
            raise ValueError(
                f"no hook point {', '.join(map(repr, unknown))} in this model; its hook points are {', '.join(points)}"
            )

    def configure_optimizer(
        self,
        weight_decay: float,
        learning_rate: float,
        betas: tuple[float, float],
        device_type: str,
    ) -> torch.optim.AdamW:
        """AdamW that decays only matrices (Linear weights, embeddings), not gains and biases.

        Decay pulls weights toward zero; that regularises matrices, but a norm gain of 0 or a
        shrunken bias just removes capacity, so 1-D parameters are left alone.
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
        learned position embedding, which is only looked up, never multiplied (the other
        pos_encodings have no parameters); the tied token embedding stays in because it is
        multiplied as lm_head; SwiGLU's three matrices are all in it. Attention adds matmuls with
        no weights: per layer and token, q·kᵀ and pattern·v each cost 2·d·T forward, so
        4·d·T forward and 12·d·T with the backward, i.e. 12·n_layer·n_embd·block_size
        (counting the full block, as if nothing were masked). Elementwise work (norms, softmax,
        RoPE's rotations) is left out as negligible.
        """
        cfg = self.config
        lookup_only = self.wpe.weight.numel() if cfg.pos_encoding == "learned" else 0
        return 6 * (self.num_params() - lookup_only) + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size
