"""A GPT forward and backward in NumPy float64, composed from fnnet_reference.layers only;
and the twin of fnnet's TiedLM layer for any body (tiedlm_forward, tiedlm_backward).

params: a dict
    wte [V, C], wpe [context, C], lnf_g, lnf_b [C],
    blocks: list of dicts ln1_g, ln1_b, w_qkv, b_qkv, w_o, b_o, ln2_g, ln2_b,
            w1 [C, 4C], b1, w2 [4C, C], b2
Per block (pre-LN): h = h + attn(LN1(h)); h = h + W2·gelu(W1·LN2(h)); logits = LNf(h) wteᵀ.
"""
import numpy as np

from ..layers.activations import gelu_backward, gelu_forward
from ..layers.attention import attention_backward, attention_forward
from ..layers.embedding import (embedding_backward, embedding_forward, positional_backward, positional_forward,
                               token_position_backward, token_position_forward)
from ..layers.norm import layernorm_backward, layernorm_forward
from ..losses_seq import sequence_cross_entropy, sequence_cross_entropy_grad


def _mlp(blk, a):
    return gelu_forward(a @ blk["w1"] + blk["b1"]) @ blk["w2"] + blk["b2"]


def forward(params, ids, heads):
    """ids [batch, T] int -> (logits [batch, T, V], the activations the backward reads)."""
    h = positional_forward(embedding_forward(ids, params["wte"]), params["wpe"])
    acts = []
    for blk in params["blocks"]:
        a1 = layernorm_forward(h, blk["ln1_g"], blk["ln1_b"])
        h1 = h + attention_forward(a1, blk["w_qkv"], blk["b_qkv"], blk["w_o"], blk["b_o"], heads=heads)
        a2 = layernorm_forward(h1, blk["ln2_g"], blk["ln2_b"])
        acts.append((h, a1, h1, a2))
        h = h1 + _mlp(blk, a2)
    hf = layernorm_forward(h, params["lnf_g"], params["lnf_b"])
    return hf @ np.asarray(params["wte"], np.float64).T, (acts, h, hf)


def loss_and_grad(params, ids, targets, heads, **loss_options):
    """-> (loss, grads with params' structure). loss_options: ignore_index, label_smoothing, mask."""
    logits, (acts, h, hf) = forward(params, ids, heads)
    loss = sequence_cross_entropy(logits, targets, **loss_options)
    dz = sequence_cross_entropy_grad(logits, targets, **loss_options)
    c = hf.shape[-1]
    wte = np.asarray(params["wte"], np.float64)
    grads = {"wte": dz.reshape(-1, dz.shape[-1]).T @ hf.reshape(-1, c)}   # the head's share of dE
    dhf = dz @ wte
    grads["lnf_g"], grads["lnf_b"], dh = layernorm_backward(h, params["lnf_g"], params["lnf_b"], dhf)
    blocks = []
    for blk, (h0, a1, h1, a2) in reversed(list(zip(params["blocks"], acts))):
        g = {}
        pre = a2 @ blk["w1"] + blk["b1"]
        act = gelu_forward(pre)
        g["w2"], g["b2"] = act.reshape(-1, act.shape[-1]).T @ dh.reshape(-1, c), dh.reshape(-1, c).sum(0)
        dpre = gelu_backward(pre, dh @ np.asarray(blk["w2"]).T)
        g["w1"], g["b1"] = a2.reshape(-1, c).T @ dpre.reshape(-1, dpre.shape[-1]), dpre.reshape(-1, dpre.shape[-1]).sum(0)
        g["ln2_g"], g["ln2_b"], dh1_mlp = layernorm_backward(h1, blk["ln2_g"], blk["ln2_b"], dpre @ np.asarray(blk["w1"]).T)
        dh1 = dh + dh1_mlp                                       # residual: skip + block
        g["w_qkv"], g["b_qkv"], g["w_o"], g["b_o"], da1 = attention_backward(
            a1, blk["w_qkv"], blk["b_qkv"], blk["w_o"], blk["b_o"], dh1, heads=heads)
        g["ln1_g"], g["ln1_b"], dh0_attn = layernorm_backward(h0, blk["ln1_g"], blk["ln1_b"], da1)
        dh = dh1 + dh0_attn                                      # residual: skip + block
        blocks.append(g)
    grads["blocks"] = blocks[::-1]
    grads["wpe"], dh = positional_backward(embedding_forward(ids, params["wte"]), params["wpe"], dh)
    grads["wte"] = grads["wte"] + embedding_backward(ids, params["wte"], dh)   # tied: head + encoder
    return loss, grads


def tiedlm_forward(ids, wte, wpe, body):
    """ids [batch, T] int -> logits [batch, T, V] = body(wte[ids] + wpe[:T]) · wteᵀ.
    body: a function h0 [batch, T, C] -> h [batch, T, C] (it stands where the body's params do)."""
    h = body(token_position_forward(ids, wte, wpe))
    return h @ np.asarray(wte, np.float64).T


def tiedlm_backward(ids, wte, wpe, body, body_backward, dy):
    """dy [batch, T, V] -> (dwte, dwpe, the body's grads); body_backward(h0, dh) -> (grads, dh0).
    wte is used twice (encoder and head), so dwte is the sum of both uses' gradients."""
    wte, dy = np.asarray(wte, np.float64), np.asarray(dy, np.float64)
    h0 = token_position_forward(ids, wte, wpe)
    h = body(h0)
    c, v = h.shape[-1], wte.shape[0]
    dwte_head = dy.reshape(-1, v).T @ h.reshape(-1, c)       # head: logits = h wteᵀ
    body_grads, dh0 = body_backward(h0, dy @ wte)              # dL/dh = dy · wte
    dwte_enc, dwpe = token_position_backward(ids, wte, wpe, dh0)
    return dwte_head + dwte_enc, dwpe, body_grads
