"""fnnet.gpt's model as a PyTorch module with the same weights (the GPT-vs-torch workload).

    model = TorchGPT(params, heads)         # params: fnnet.init(fnnet.gpt(...), key)
    loss = model.loss(ids, targets)         # ids, targets [B, T] int64 -> mean cross-entropy

The same architecture as fnnet/models/gpt.py: h₀ = E[ids] + P[:T]; per block pre-LN
h += attn(LN(h)), h += W₂ GELU_tanh(W₁ LN(h)); final LN; logits = h Eᵀ (tied head);
LayerNorm eps 1e-5; the loss is the mean next-token cross-entropy over B·T tokens.
Attention is torch's idiomatic fused F.scaled_dot_product_attention(is_causal=True), what a
PyTorch user writes, so the comparison is against torch at its best in eager mode. fnnet's
Dense and attention weights are [in, out]; F.linear takes [out, in], hence the transposes
when the weights are copied (copies: the torch module owns its tensors).
"""
from __future__ import annotations

import numpy as np


def _t(a):
    import torch
    return torch.nn.Parameter(torch.from_numpy(np.array(a, dtype=np.float32, copy=True)))


def _block_params(body):
    """fnnet's body params (attn, mlp, attn, mlp, ..., final LN) -> [(attn, mlp)], final LN."""
    return list(zip(body[0:-1:2], body[1:-1:2])), body[-1]


def build(params, heads):
    """fnnet.gpt params (a 1-tuple of LMParams) -> a torch.nn.Module with those weights."""
    import torch
    import torch.nn.functional as F

    lm = params[0]
    blocks, lnf = _block_params(lm.body)

    class Block(torch.nn.Module):
        def __init__(self, attn, mlp):
            super().__init__()
            (ln1, at), (ln2, d1, _, d2) = attn, mlp
            self.ln1_g, self.ln1_b = _t(ln1.gamma), _t(ln1.beta)
            self.w_qkv, self.b_qkv = _t(np.asarray(at.w_qkv).T), _t(at.b_qkv)     # [3C, C]
            self.w_o, self.b_o = _t(np.asarray(at.w_o).T), _t(at.b_o)
            self.ln2_g, self.ln2_b = _t(ln2.gamma), _t(ln2.beta)
            self.w1, self.b1 = _t(np.asarray(d1.w).T), _t(d1.b)
            self.w2, self.b2 = _t(np.asarray(d2.w).T), _t(d2.b)

        def forward(self, h):
            b, t, c = h.shape
            a = F.layer_norm(h, (c,), self.ln1_g, self.ln1_b, 1e-5)
            q, k, v = F.linear(a, self.w_qkv, self.b_qkv).split(c, dim=-1)
            q, k, v = (z.view(b, t, heads, c // heads).transpose(1, 2) for z in (q, k, v))
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            h = h + F.linear(o.transpose(1, 2).reshape(b, t, c), self.w_o, self.b_o)
            m = F.layer_norm(h, (c,), self.ln2_g, self.ln2_b, 1e-5)
            m = F.gelu(F.linear(m, self.w1, self.b1), approximate="tanh")
            return h + F.linear(m, self.w2, self.b2)

    class GPT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = _t(lm.encoder.wte), _t(lm.encoder.wpe)
            self.blocks = torch.nn.ModuleList([Block(a, m) for a, m in blocks])
            self.lnf_g, self.lnf_b = _t(lnf.gamma), _t(lnf.beta)

        def forward(self, ids):
            t = ids.shape[1]
            h = self.wte[ids] + self.wpe[:t]
            for blk in self.blocks:
                h = blk(h)
            h = F.layer_norm(h, (h.shape[-1],), self.lnf_g, self.lnf_b, 1e-5)
            return h @ self.wte.T                                           # tied head

        def loss(self, ids, targets):
            logits = self(ids)
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    return GPT()
