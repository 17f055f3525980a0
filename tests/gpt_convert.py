"""fnnet GPT params <-> reference.models.gpt's dict (shared by the GPT tests and scripts)."""
import numpy as np


def to_reference(params):
    """fnnet.gpt params (a 1-tuple of LMParams) -> the reference's dict of float64 arrays."""
    lm = params[0]
    f = lambda a: np.asarray(a, np.float64)  # noqa: E731
    body = lm.body
    blocks = []
    for attn, mlp in zip(body[0:-1:2], body[1:-1:2]):
        ln1, at = attn
        ln2, d1, _, d2 = mlp
        blocks.append(dict(ln1_g=f(ln1.gamma), ln1_b=f(ln1.beta), w_qkv=f(at.w_qkv), b_qkv=f(at.b_qkv),
                           w_o=f(at.w_o), b_o=f(at.b_o), ln2_g=f(ln2.gamma), ln2_b=f(ln2.beta),
                           w1=f(d1.w), b1=f(d1.b), w2=f(d2.w), b2=f(d2.b)))
    return dict(wte=f(lm.encoder.wte), wpe=f(lm.encoder.wpe), lnf_g=f(body[-1].gamma),
                lnf_b=f(body[-1].beta), blocks=blocks)


def from_reference(grads, like):
    """The reference's gradient dict -> fnnet's params tree (the structure of `like`)."""
    lm = like[0]
    body = []
    for g, attn, mlp in zip(grads["blocks"], lm.body[0:-1:2], lm.body[1:-1:2]):
        ln1, at = attn
        ln2, d1, act, d2 = mlp
        body.append((type(ln1)(g["ln1_g"], g["ln1_b"]), type(at)(g["w_qkv"], g["b_qkv"], g["w_o"], g["b_o"])))
        body.append((type(ln2)(g["ln2_g"], g["ln2_b"]), type(d1)(g["w1"], g["b1"]), (), type(d2)(g["w2"], g["b2"])))
    body.append(type(lm.body[-1])(grads["lnf_g"], grads["lnf_b"]))
    return (type(lm)(type(lm.encoder)(grads["wte"], grads["wpe"]), tuple(body)),)
