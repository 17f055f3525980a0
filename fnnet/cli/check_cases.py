"""The cases `fnnet check` runs: every built-in layer and loss, the seeds' networks, a CNN
and a small GPT, each with the objects it checks (its subjects), so that `--only` can
select by any layer or loss name and a test can prove every public one is covered.

A case: (name, kind, build, subjects); build(dtype) -> (name of a fnnet.check function,
args, kwargs), made lazily so that unselected cases cost nothing.
"""
from __future__ import annotations

import dataclasses
import inspect

import jax
import numpy as np


def is_layer(obj) -> bool:
    return all(callable(getattr(obj, m, None)) for m in ("init", "forward", "backward"))


def is_loss(obj) -> bool:
    return all(callable(getattr(obj, m, None)) for m in ("value", "grad"))


def public_names() -> tuple:
    """Class names of fnnet's public layers and losses (fnnet.__all__), the set `fnnet check`
    must cover: a new public layer without a case fails tests/cli/test_cli_check.py."""
    import fnnet
    classes = (getattr(fnnet, n) for n in fnnet.__all__)
    return tuple(c.__name__ for c in classes if inspect.isclass(c) and (is_layer(c) or is_loss(c)))


def covered(subjects) -> set:
    """Class names of the subjects (layers, losses, Networks) and of every layer or loss
    inside them (Network layers and loss, a combinator's or TiedLM's dataclass fields)."""
    names = set()

    def walk(obj):
        if isinstance(obj, (tuple, list)):
            for item in obj:
                walk(item)
            return
        if is_layer(obj) or is_loss(obj):
            names.add(type(obj).__name__)
        if hasattr(obj, "layers") and hasattr(obj, "loss") and hasattr(obj, "in_shape"):   # a Network
            walk(obj.layers)
            walk(obj.loss)
        elif dataclasses.is_dataclass(obj) and is_layer(obj):
            for field in dataclasses.fields(obj):
                walk(getattr(obj, field.name))
    walk(subjects)
    return names


def _kinky(rng, shape, step=1e-6):
    """Normal values with exact zeros and values inside the FD step (relu kinks)."""
    x = rng.standard_normal(shape)
    flat = x.reshape(-1)
    flat[::5] = 0.0
    flat[1::7] = 0.3 * step * np.sign(flat[1::7])
    return x


def cases(rng):
    """[(name, kind, build, subjects)] in the order `fnnet check` prints them.

    The steps draw from ``rng`` in this order: the shared inputs, then each case as listed;
    the custom_vjp case draws its params when it is built (once per dtype).
    """
    inputs = _shared_inputs(rng)
    return [
        *_activation_cases(rng, inputs),
        *_loss_cases(rng, inputs),
        *_seed_network_cases(rng, inputs),
        *_vision_cases(rng),
        *_sequence_cases(rng),
        *_recurrent_and_zoo_cases(rng),
    ]


def _layer_case(lyr, x, params=None):
    """(build, subjects) for check_layer; params default to the layer's init (Dense-like) or ()."""
    def build(dt):
        if params is None:
            p = () if not hasattr(lyr, "units") else jax.tree.map(
                lambda a: np.asarray(a, dt), lyr.init(jax.random.key(1), x.shape[1:])[0])
        else:
            p = jax.tree.map(lambda a: np.asarray(a, dt), params)
        return "check_layer", (lyr, p, np.asarray(x, dt)), {}
    return build, (lyr,)


def _loss_case(name, out, target):
    """(build, subjects) for check_loss; integer targets stay int32 in both dtypes."""
    import fnnet

    def build(dt):
        t = target.astype(np.int32) if target.dtype.kind == "i" else np.asarray(target, dt)
        return "check_loss", (name, np.asarray(out, dt), t), {}
    return build, (fnnet.losses.get(name),)


def _network_case(rng, net, x, y, zero_biases=False):
    """(build, subjects) for check_network on an MLP, its params drawn from ``rng`` now.

    Params are drawn with NumPy (N(0, 1/fan_in) weights): fnnet.init would spend a
    compilation per op on them, and the check only needs generic values.
    """
    import fnnet

    params = []
    for layer, (in_shape, _, _) in zip(net.layers, fnnet.contracts.layout(net)):
        if isinstance(layer, fnnet.Dense):
            w = rng.standard_normal((in_shape[0], layer.units)) / np.sqrt(in_shape[0])
            b = np.zeros(layer.units) if zero_biases else 0.1 * rng.standard_normal(layer.units)
            params.append(fnnet.DenseParams(w, b))
        else:
            params.append(())
    x = np.array(x, np.float64)
    if zero_biases:   # zero biases + a zero input row: hidden pre-activations exactly 0 (kinks)
        x[0] = 0.0

    def build(dt):
        p = tuple(jax.tree.map(lambda a: np.asarray(a, dt), q) for q in params)
        yy = y.astype(np.int32) if y.dtype.kind == "i" else np.asarray(y, dt)
        return "check_network", (net, p, np.asarray(x, dt), yy), {}
    return build, (net,)


def _custom_vjp_case(rng, net, x, y):
    """(build, subjects) for fnnet.loss_with_manual_grad(net): a jax.custom_vjp around the
    hand-written backward, checked by its own fwd/bwd against autodiff of the undecorated
    loss and FD. Its params are drawn when the case is built."""
    import fnnet

    def build(dt):
        p = tuple(jax.tree.map(lambda a: np.asarray(a, dt), q)
                  for q in _network_case(rng, net, x, y)[0](dt)[1][1])
        return "check_custom_vjp", (fnnet.loss_with_manual_grad(net), p, np.asarray(x, dt), y), {}
    return build, (net,)


def _shared_inputs(rng):
    """Inputs several cases share: saturating logits, a digits-shaped batch, XOR, blobs."""
    dense_params = rng.standard_normal((3, 4)), rng.standard_normal(4)
    logits = rng.standard_normal((6, 5))
    logits[0] = rng.uniform(-1000, 1000, 5)              # huge spread: saturated softmax
    sat = rng.standard_normal((4, 6))
    sat[0, :3], sat[1, :3] = 40.0, -40.0                 # saturated sigmoid / tanh
    sat[2, :3] = 20.0
    onehot = np.eye(5)[rng.integers(0, 5, 6)]
    x_xor = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])   # seed 003's XOR
    y_xor = np.array([[0.0], [1.0], [1.0], [0.0]])
    # Seed 001's net on a digits-shaped batch: 64 pixel intensities in [0, 1] (a third of them
    # 0, like the scaled 8x8 digits) and labels 0-9. Loading the real digits costs seconds of
    # scikit-learn import; the check is about the network's gradients, not the data.
    x_digits = rng.uniform(0, 1, (64, 64)) * (rng.uniform(0, 1, (64, 64)) > 0.33)
    y_digits = rng.integers(0, 10, 64)
    # seed 002's three clusters (means (0, 0), (1, 4), (2, 8)), drawn here: fnnet.datasets.blobs
    # splits with scikit-learn, whose import alone costs seconds
    y_blobs = np.arange(16) % 3
    x_blobs = np.array([(0.0, 0.0), (1.0, 4.0), (2.0, 8.0)])[y_blobs] + rng.standard_normal((16, 2))
    return dict(dense_params=dense_params, logits=logits, sat=sat, onehot=onehot, x_xor=x_xor,
                y_xor=y_xor, x_digits=x_digits, y_digits=y_digits, x_blobs=x_blobs, y_blobs=y_blobs)


def _activation_cases(rng, inputs):
    """Dense and the elementwise activations, each at its hard inputs (kinks, saturation)."""
    import fnnet

    sat, logits = inputs["sat"], inputs["logits"]
    return [
        ("dense", "layer", *_layer_case(fnnet.Dense(4), rng.standard_normal((5, 3)),
                                        fnnet.DenseParams(*inputs["dense_params"]))),
        ("identity", "layer", *_layer_case(fnnet.Identity(), rng.standard_normal((5, 4)))),
        ("relu (kinks)", "layer", *_layer_case(fnnet.Relu(), _kinky(rng, (5, 4)))),
        ("leaky_relu (kinks)", "layer", *_layer_case(fnnet.LeakyRelu(0.1), _kinky(rng, (5, 4)))),
        ("sigmoid (saturated)", "layer", *_layer_case(fnnet.Sigmoid(), sat)),
        ("tanh (saturated)", "layer", *_layer_case(fnnet.Tanh(), sat)),
        ("softmax (±1000 logits)", "layer", *_layer_case(fnnet.Softmax(), logits)),
    ]


def _loss_cases(rng, inputs):
    """The four classic losses, cross-entropies at saturating logits."""
    sat = inputs["sat"]
    return [
        ("mse", "loss", *_loss_case("mse", rng.standard_normal((6, 3)), rng.standard_normal((6, 3)))),
        ("half_sse", "loss", *_loss_case("half_sse", rng.standard_normal((6, 3)),
                                         rng.standard_normal((6, 3)))),
        ("softmax_cross_entropy", "loss", *_loss_case("softmax_cross_entropy", inputs["logits"],
                                                      inputs["onehot"])),
        ("sigmoid_binary_ce", "loss", *_loss_case("sigmoid_binary_cross_entropy", sat,
                                                  rng.uniform(0, 1, sat.shape))),
    ]


def _seed_network_cases(rng, inputs):
    """The four seed tutorials' networks, and seed 002's as fnnet's custom_vjp loss."""
    import fnnet

    x_blobs, y_blobs = inputs["x_blobs"], inputs["y_blobs"]
    return [
        ("seed 000: 2-3-2 relu/sigmoid", "network",
         *_network_case(rng, fnnet.mlp([2, 3, 2], activation="relu", output="sigmoid", loss="half_sse"),
                        rng.standard_normal((4, 2)), rng.uniform(0, 1, (4, 2)), zero_biases=True)),
        ("seed 001: digits 64-128-128-10", "network",
         *_network_case(rng, fnnet.mlp([64, 128, 128, 10], activation="sigmoid",
                                       loss="softmax_cross_entropy"),
                        inputs["x_digits"][:64], inputs["y_digits"][:64])),
        ("seed 002: 2-5-3 relu/CE + L2 0.01", "network",
         *_network_case(rng, fnnet.mlp([2, 5, 3], activation="relu", loss="softmax_cross_entropy",
                                       l2=0.01),
                        x_blobs[:16], y_blobs[:16], zero_biases=True)),
        ("loss_with_manual_grad (custom_vjp)", "custom_vjp",
         *_custom_vjp_case(rng, fnnet.mlp([2, 5, 3], activation="tanh", loss="softmax_cross_entropy"),
                           x_blobs[:8], y_blobs[:8].astype(np.int32))),
        ("seed 003: 2-3-1 tanh/mse", "network",
         *_network_case(rng, fnnet.mlp([2, 3, 1], activation="tanh", output="tanh", loss="mse"),
                        inputs["x_xor"], inputs["y_xor"])),
    ]


def _vision_cases(rng):
    """Image layers (conv, pools with ties, shape, dropout with its key held fixed, batchnorm in
    both modes, ELU/SiLU/Softplus) and a small CNN with batchnorm and dropout, in both modes."""
    import fnnet

    def case(lyr, x, params=None, **kw):
        def build(dt):
            cast = lambda t: jax.tree.map(lambda a: np.asarray(a, dt), t)
            p = cast(params) if params is not None else ()
            extra = {k: (cast(v) if k == "state" else v) for k, v in kw.items()}
            return "check_layer", (lyr, p, np.asarray(x, dt)), extra
        return build, (lyr,)

    img = rng.standard_normal((2, 6, 5, 3))
    ties = rng.integers(-1, 2, (2, 6, 6, 2)).astype(np.float64)      # integer pixels: tied maxima
    conv = fnnet.Conv2D(4, 3, 2, "same")
    conv_p = fnnet.ConvParams(rng.standard_normal((3, 3, 3, 4)) / 5, 0.1 * rng.standard_normal(4))
    bn_p = fnnet.BatchNormParams(1 + 0.2 * rng.standard_normal(3), 0.1 * rng.standard_normal(3))
    bn_s = fnnet.BatchNormState(0.1 * rng.standard_normal(3), 1 + 0.1 * rng.uniform(size=3))
    key = jax.random.PRNGKey(3)
    net = fnnet.Network((fnnet.Conv2D(3, 2), fnnet.Tanh(), fnnet.BatchNorm(), fnnet.MaxPool2D(2),
                         fnnet.Flatten(), fnnet.Dropout(0.3), fnnet.Dense(3)), "softmax_cross_entropy", (5, 5, 2))
    net_p = [fnnet.ConvParams(rng.standard_normal((2, 2, 2, 3)) / 3, 0.1 * rng.standard_normal(3)), (),
             fnnet.BatchNormParams(1 + 0.2 * rng.standard_normal(3), 0.1 * rng.standard_normal(3)), (), (), (),
             fnnet.DenseParams(rng.standard_normal((12, 3)) / 4, 0.1 * rng.standard_normal(3))]
    net_s = ((), (), fnnet.BatchNormState(0.1 * rng.standard_normal(3), 1 + 0.1 * rng.uniform(size=3)),
             (), (), (), ())
    x_net, y_net = rng.standard_normal((4, 5, 5, 2)), rng.integers(0, 3, 4).astype(np.int32)

    def cnn(train):
        def build(dt):
            cast = lambda t: jax.tree.map(lambda a: np.asarray(a, dt), t)
            return "check_network", (net, tuple(cast(q) for q in net_p), np.asarray(x_net, dt), y_net), \
                dict(state=cast(net_s), forward_key=key, train=train)
        return build, (net,)

    return [
        ("conv2d 3x3 stride 2 same", "layer", *case(conv, img, conv_p)),
        ("maxpool2d 2x2 (ties)", "layer", *case(fnnet.MaxPool2D(2), ties)),
        ("maxpool2d 3x3 stride 2", "layer", *case(fnnet.MaxPool2D(3, 2), img)),
        ("avgpool2d 2x2", "layer", *case(fnnet.AvgPool2D(2), img)),
        ("flatten", "layer", *case(fnnet.Flatten(), img)),
        ("dropout 0.3 (key fixed)", "layer", *case(fnnet.Dropout(0.3), img, forward_key=key)),
        ("batchnorm train (images)", "layer", *case(fnnet.BatchNorm(), img, bn_p, state=bn_s, train=True)),
        ("batchnorm eval (images)", "layer", *case(fnnet.BatchNorm(), img, bn_p, state=bn_s, train=False)),
        ("batchnorm full form, [N, C]", "layer", *case(fnnet.BatchNorm(backward_form="full"),
                                                      rng.standard_normal((6, 3)), bn_p, state=bn_s, train=True)),
        ("elu", "layer", *case(fnnet.ELU(), rng.standard_normal((5, 4)))),
        ("silu", "layer", *case(fnnet.SiLU(), rng.standard_normal((5, 4)))),
        ("softplus", "layer", *case(fnnet.Softplus(), rng.standard_normal((5, 4)))),
        ("cnn conv/bn/pool/dropout train", "network", *cnn(True)),
        ("cnn conv/bn/pool/dropout eval", "network", *cnn(False)),
    ]


def _init(layer, in_shape, rng):
    """layer.init's params plus N(0, 0.1²) noise, so that no scale is exactly 1 and no bias 0."""
    params, _ = layer.init(jax.random.key(1), in_shape)
    return jax.tree.map(lambda a: np.asarray(a, np.float64) + 0.1 * rng.standard_normal(np.shape(a)), params)


def _sequence_cases(rng):
    """GELU, Reshape, the norms, the embeddings, attention, Positionwise, a TiedLM with a
    Residual(Sequential(...)) body, and SequenceCrossEntropy: sequences [batch 2, T 5,
    width 4], a vocabulary of 7 ids."""
    import fnnet

    def case(lyr, x):
        seed = int(rng.integers(2 ** 31))      # params drawn when built: unselected cases cost nothing

        def build(dt):
            params = _init(lyr, x.shape[1:], np.random.default_rng(seed))
            xx = x if x.dtype.kind == "i" else np.asarray(x, dt)
            return "check_layer", (lyr, jax.tree.map(lambda a: np.asarray(a, dt), params), xx), {}
        return build, (lyr,)

    def loss(lss, out, target):
        return (lambda dt: ("check_loss", (lss, np.asarray(out, dt), target), {})), (lss,)

    seq, ids = rng.standard_normal((2, 5, 4)), rng.integers(0, 7, (2, 5)).astype(np.int32)
    ids[0, :2] = 0                                             # an id repeated: its rows of dw add up
    # the tied head around a small residual body (Residual, Sequential), whose parts are
    # checked on their own too; attention inside a body costs seconds more and adds no code path
    lm = fnnet.TiedLM(fnnet.TokenPositionEmbedding(7, 6, 4),
                      fnnet.Residual(fnnet.Sequential((fnnet.RMSNorm(), fnnet.Positionwise(fnnet.Dense(4))))))
    targets = rng.integers(0, 7, (2, 5)).astype(np.int32)
    targets[1, 3] = 0
    return [
        ("gelu (tanh form)", "layer", *case(fnnet.GELU(), rng.standard_normal((5, 4)))),
        ("gelu (erf form)", "layer", *case(fnnet.GELU(approximate=False), rng.standard_normal((5, 4)))),
        ("reshape", "layer", *case(fnnet.Reshape((2, 3)), rng.standard_normal((4, 6)))),
        ("layernorm", "layer", *case(fnnet.LayerNorm(), seq)),
        ("rmsnorm", "layer", *case(fnnet.RMSNorm(), seq)),
        ("embedding (ids)", "layer", *case(fnnet.Embedding(7, 4), ids)),
        ("positional embedding", "layer", *case(fnnet.PositionalEmbedding(6, 4), seq)),
        ("token+position embedding", "layer", *case(fnnet.TokenPositionEmbedding(7, 6, 4), ids)),
        ("causal self-attention", "layer", *case(fnnet.CausalSelfAttention(2, 4), seq)),
        ("attention, recompute", "layer", *case(fnnet.CausalSelfAttention(2, 4, recompute=True), seq)),
        ("positionwise dense", "layer", *case(fnnet.Positionwise(fnnet.Dense(3)), seq)),
        ("tiedlm (tiny gpt)", "layer", *case(lm, ids)),
        ("sequence_cross_entropy", "loss",
         *loss(fnnet.SequenceCrossEntropy(), rng.standard_normal((2, 5, 7)), targets)),
        ("sequence_ce ignore 0, smoothing", "loss",
         *loss(fnnet.SequenceCrossEntropy(ignore_index=0, label_smoothing=0.1),
               rng.standard_normal((2, 5, 7)), targets)),
    ]


def _recurrent_and_zoo_cases(rng):
    """RNN, LSTM and GRU over padded sequences (the mask channel last: lengths 5 and 3, so
    the padded steps' carry-through is exercised), a GRU returning its last state, a
    transposed convolution and GroupNorm; params from init plus noise, as _sequence_cases."""
    import fnnet

    def case(lyr, x):
        seed = int(rng.integers(2 ** 31))

        def build(dt):
            params = _init(lyr, x.shape[1:], np.random.default_rng(seed))
            return "check_layer", (lyr, jax.tree.map(lambda a: np.asarray(a, dt), params),
                                   np.asarray(x, dt)), {}
        return build, (lyr,)

    seq = rng.standard_normal((2, 5, 3))
    lengths = np.array([5, 3])
    padded = np.concatenate([seq, (np.arange(5)[None, :] < lengths[:, None])[:, :, None]], axis=2)
    return [
        ("rnn (padded)", "layer", *case(fnnet.RNN(4, masked=True), padded)),
        ("lstm (padded)", "layer", *case(fnnet.LSTM(4, masked=True), padded)),
        ("gru (last state)", "layer", *case(fnnet.GRU(4, return_sequences=False), seq)),
        ("conv_transpose2d 3x3 stride 2", "layer",
         *case(fnnet.ConvTranspose2D(3, 3, 2, "same"), rng.standard_normal((2, 3, 4, 2)))),
        ("groupnorm 2 groups", "layer", *case(fnnet.GroupNorm(2), 2 * rng.standard_normal((2, 3, 4, 6)) + 1)),
    ]
