"""NumPy systems: the seeds' own loops, and the `reference/` float64 twin.

* seed 001 (W1): the post's `MyNN` full-batch loop, re-typed here as published
  (sigmoid hidden layers, softmax output, delta = (a3 - y) / n, in-place `-=` updates).
* seed 002 (W2): the post's full-batch loop (ReLU, softmax, L2, in-place updates).
* W3 has no seed: the same style of loop (ReLU deltas as seed 002 writes them) with
  minibatches in data order and Adam written in NumPy (optax.adam's formula).
* reference: `reference.network.train_sgd` (W1, W2), or `reference.network.backward`
  plus the NumPy Adam below (W3). The reference computes in float64 only.

BLAS threads: on a shared 2-core machine multi-threaded OpenBLAS spin-waits against the
other load and can be many times slower than one thread on these small matrices, so the
NumPy rows run with `blas_threads` BLAS threads (1 by default, via threadpoolctl); the
`numpy-seed[blas default]` row shows the untouched default.
"""
from __future__ import annotations

import contextlib

import numpy as np

from fnnet.bench.timing import Runner, median_time

# ---------------------------------------------------------------- seed 001, verbatim style


def sigmoid(s):
    return 1 / (1 + np.exp(-s))


def sigmoid_derv(s):
    return s * (1 - s)


def softmax(s):
    exps = np.exp(s - np.max(s, axis=1, keepdims=True))
    return exps / np.sum(exps, axis=1, keepdims=True)


def cross_entropy(pred, real):
    n_samples = real.shape[0]
    res = pred - real
    return res / n_samples


def error(pred, real):
    n_samples = real.shape[0]
    logp = - np.log(pred[np.arange(n_samples), real.argmax(axis=1)])
    loss = np.sum(logp) / n_samples
    return loss


class MyNN:
    """Seed 001's network, with the benchmark's shared initial weights and lr."""

    def __init__(self, x, y, params, lr):
        self.x = x
        self.lr = lr
        (w1, b1), (w2, b2), (w3, b3) = params
        self.w1, self.b1 = w1.copy(), b1.reshape(1, -1).copy()
        self.w2, self.b2 = w2.copy(), b2.reshape(1, -1).copy()
        self.w3, self.b3 = w3.copy(), b3.reshape(1, -1).copy()
        self.y = y
        self.losses = []

    def feedforward(self):
        z1 = np.dot(self.x, self.w1) + self.b1
        self.a1 = sigmoid(z1)
        z2 = np.dot(self.a1, self.w2) + self.b2
        self.a2 = sigmoid(z2)
        z3 = np.dot(self.a2, self.w3) + self.b3
        self.a3 = softmax(z3)

    def backprop(self):
        loss = error(self.a3, self.y)
        self.losses.append(loss)          # the post prints it every epoch: print('Error :', loss)
        a3_delta = cross_entropy(self.a3, self.y)  # w3
        z2_delta = np.dot(a3_delta, self.w3.T)
        a2_delta = z2_delta * sigmoid_derv(self.a2)  # w2
        z1_delta = np.dot(a2_delta, self.w2.T)
        a1_delta = z1_delta * sigmoid_derv(self.a1)  # w1

        self.w3 -= self.lr * np.dot(self.a2.T, a3_delta)
        # The post's final listing writes `self.b3 = ...`, `self.w2 = ...` etc. (plain `=`)
        # from its line 65 on, which would overwrite the parameters with their scaled
        # gradients; its own step-by-step code above uses `-=`, the intended update.
        self.b3 -= self.lr * np.sum(a3_delta, axis=0, keepdims=True)
        self.w2 -= self.lr * np.dot(self.a1.T, a2_delta)
        self.b2 -= self.lr * np.sum(a2_delta, axis=0)
        self.w1 -= self.lr * np.dot(self.x.T, a1_delta)
        self.b1 -= self.lr * np.sum(a1_delta, axis=0)

    def params(self):
        return [(self.w1, self.b1), (self.w2, self.b2), (self.w3, self.b3)]


def seed001_train(x, y, params, lr, epochs):
    model = MyNN(x, y, params, lr)
    for _ in range(epochs):
        model.feedforward()
        model.backprop()
    return model.params()

# ---------------------------------------------------------------- seed 002, verbatim style


def relu_activation(data_array):
    return np.maximum(data_array, 0)


def softmax_002(output_array):
    logits_exp = np.exp(output_array)                  # seed 002: no max shift
    return logits_exp / np.sum(logits_exp, axis=1, keepdims=True)


def cross_entropy_softmax_loss_array(softmax_probs_array, y_onehot):
    indices = np.argmax(y_onehot, axis=1).astype(int)
    predicted_probability = softmax_probs_array[np.arange(len(softmax_probs_array)), indices]
    log_preds = np.log(predicted_probability)
    loss = -1.0 * np.sum(log_preds) / len(log_preds)
    return loss


def regularization_L2_softmax_loss(reg_lambda, weight1, weight2):
    weight1_loss = 0.5 * reg_lambda * np.sum(weight1 * weight1)
    weight2_loss = 0.5 * reg_lambda * np.sum(weight2 * weight2)
    return weight1_loss + weight2_loss


def seed002_train(training_data, training_labels, params, learning_rate, reg_lambda, steps):
    (w1, b1), (w2, b2) = params
    layer1_weights_array, layer1_biases_array = w1.copy(), b1.reshape(1, -1).copy()
    layer2_weights_array, layer2_biases_array = w2.copy(), b2.reshape(1, -1).copy()
    for step in range(steps):
        input_layer = np.dot(training_data, layer1_weights_array)
        hidden_layer = relu_activation(input_layer + layer1_biases_array)
        output_layer = np.dot(hidden_layer, layer2_weights_array) + layer2_biases_array
        output_probs = softmax_002(output_layer)
        loss = cross_entropy_softmax_loss_array(output_probs, training_labels)
        loss += regularization_L2_softmax_loss(reg_lambda, layer1_weights_array, layer2_weights_array)
        output_error_signal = (output_probs - training_labels) / output_probs.shape[0]
        error_signal_hidden = np.dot(output_error_signal, layer2_weights_array.T)
        error_signal_hidden[hidden_layer <= 0] = 0
        gradient_layer2_weights = np.dot(hidden_layer.T, output_error_signal)
        gradient_layer2_bias = np.sum(output_error_signal, axis=0, keepdims=True)
        gradient_layer1_weights = np.dot(training_data.T, error_signal_hidden)
        gradient_layer1_bias = np.sum(error_signal_hidden, axis=0, keepdims=True)
        gradient_layer2_weights += reg_lambda * layer2_weights_array
        gradient_layer1_weights += reg_lambda * layer1_weights_array
        layer1_weights_array -= learning_rate * gradient_layer1_weights
        layer1_biases_array -= learning_rate * gradient_layer1_bias
        layer2_weights_array -= learning_rate * gradient_layer2_weights
        layer2_biases_array -= learning_rate * gradient_layer2_bias
        # (the post prints the loss every 500 steps)
    return [(layer1_weights_array, layer1_biases_array), (layer2_weights_array, layer2_biases_array)]

# ---------------------------------------------------------------- W3: the seeds' style, minibatch + Adam


class Adam:
    """optax.adam(lr) in NumPy, in place: b1 0.9, b2 0.999, eps 1e-8, bias-corrected."""

    def __init__(self, arrays, lr, b1=0.9, b2=0.999, eps=1e-8):
        self.lr, self.b1, self.b2, self.eps, self.t = lr, b1, b2, eps, 0
        self.mu = [np.zeros_like(a) for a in arrays]
        self.nu = [np.zeros_like(a) for a in arrays]

    def step(self, arrays, grads):
        self.t += 1
        c1, c2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t
        for p, g, mu, nu in zip(arrays, grads, self.mu, self.nu):
            mu *= self.b1
            mu += (1 - self.b1) * g                       # μ ← β₁μ + (1-β₁)g
            nu *= self.b2
            nu += (1 - self.b2) * (g * g)                 # ν ← β₂ν + (1-β₂)g²
            p -= self.lr * (mu / c1) / (np.sqrt(nu / c2) + self.eps)


def seed_style_train(x, y, params, workload, max_steps=None):
    """ReLU hidden layers, softmax CE, L2, SGD or Adam, minibatches in data order."""
    ws = [w.copy() for w, _ in params]
    bs = [b.reshape(1, -1).copy() for _, b in params]
    adam = Adam(ws + bs, workload.lr) if workload.optimizer == "adam" else None
    lam, steps = workload.l2, 0
    for _ in range(workload.epochs):
        for start, size in workload.batches():
            if max_steps is not None and steps >= max_steps:
                return list(zip(ws, bs))
            xb, yb = x[start:start + size], y[start:start + size]
            acts = [xb]
            for i, (w, b) in enumerate(zip(ws, bs)):      # forward, keeping each layer's input
                z = np.dot(acts[-1], w) + b
                acts.append(relu_activation(z) if i < len(ws) - 1 else softmax(z))
            delta = (acts[-1] - yb) / size                 # seed: (probs - onehot) / n
            gw, gb = [None] * len(ws), [None] * len(ws)
            for i in reversed(range(len(ws))):
                gw[i] = np.dot(acts[i].T, delta) + lam * ws[i]
                gb[i] = np.sum(delta, axis=0, keepdims=True)
                if i:
                    delta = np.dot(delta, ws[i].T)
                    delta[acts[i] <= 0] = 0                # seed 002's ReLU derivative
            if adam is None:
                for p, g in zip(ws + bs, gw + gb):
                    p -= workload.lr * g
            else:
                adam.step(ws + bs, gw + gb)
            steps += 1
    return list(zip(ws, bs))

# ---------------------------------------------------------------- runners


@contextlib.contextmanager
def blas_threads(n):
    """Limit BLAS threads to n (None: leave the default) for the duration."""
    if n is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:                                     # sklearn brings it; be safe
        yield
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield


def _thread_note(n):
    return "BLAS default threads" if n is None else f"BLAS {n} thread{'s' if n > 1 else ''}"


def seed_runner(workload, dtype, threads=1, variant="", timed_steps=None):
    """The seed's NumPy loop for `workload` in `dtype` ("float64" as published, or "float32")."""
    x, y = (a.astype(dtype) for a in workload.data())
    init = [(w.astype(dtype), b.astype(dtype)) for w, b in workload.init_params()]
    full = workload.batch_size is None
    if full and workload.activation == "sigmoid" and len(workload.sizes) == 4 and not workload.l2:
        def train(epochs):
            return seed001_train(x, y, init, workload.lr, epochs)
        what = "seed 001's MyNN loop (`-=` fix)"
    elif full and workload.activation == "relu" and len(workload.sizes) == 3:
        def train(epochs):
            return seed002_train(x, y, init, workload.lr, workload.l2, epochs)
        what = "seed 002's loop"
    else:
        what = f"seed-style NumPy loop + NumPy {workload.optimizer}"
        train = None
    if train is not None:
        steps = timed_steps or workload.steps

        def run():
            with blas_threads(threads), np.errstate(over="ignore"):
                return train(steps)
    else:
        steps = timed_steps or (workload.slow_steps if workload.slow_steps else None)

        def run():
            with blas_threads(threads), np.errstate(over="ignore"):
                return seed_style_train(x, y, init, workload, max_steps=steps)
    return Runner("numpy-seed", dtype, run, timed_steps=steps if steps and steps < workload.steps else None,
                  note=f"{what}; {_thread_note(threads)}", variant=variant)


def reference_runner(workload, threads=1):
    """reference/ (NumPy float64): train_sgd for SGD workloads, backward + NumPy Adam else."""
    from fnnet_reference import network as ref

    x, y = workload.data()
    layers = []
    for i, (w, b) in enumerate(workload.init_params()):
        layers.append({"kind": "dense", "w": w, "b": b})
        if i < len(workload.sizes) - 2:
            layers.append({"kind": workload.activation})
    if workload.optimizer == "sgd":
        steps = None

        def run():
            with blas_threads(threads):
                trained, _ = ref.train_sgd(layers, "softmax_cross_entropy", x, y, lr=workload.lr,
                                           epochs=workload.epochs, l2=workload.l2,
                                           batch_size=workload.batch_size)
            return trained
        note = "reference.network.train_sgd"
    else:
        steps = workload.slow_steps

        def run():
            current = [dict(l) for l in layers]
            dense = [l for l in current if l["kind"] == "dense"]
            for l in dense:
                l["w"], l["b"] = l["w"].copy(), l["b"].copy()
            adam = Adam([l["w"] for l in dense] + [l["b"] for l in dense], workload.lr)
            with blas_threads(threads):
                for start, size in workload.batches()[:steps]:
                    grads = ref.backward(current, "softmax_cross_entropy", x[start:start + size],
                                         y[start:start + size], workload.l2)
                    g = [gr for gr, l in zip(grads, current) if l["kind"] == "dense"]
                    adam.step([l["w"] for l in dense] + [l["b"] for l in dense],
                              [gi["w"] for gi in g] + [gi["b"] for gi in g])
            return current
        note = "reference.network.backward + NumPy Adam"

    def params(trained):
        return [(l["w"], l["b"]) for l in trained if l["kind"] == "dense"]

    return Runner("reference", "float64", run, result_params=params,
                  timed_steps=steps if steps and steps < workload.steps else None,
                  note=f"{note}; {_thread_note(threads)}")


def eval_accuracy(workload, params, rows=4096):
    """Fraction of the first `rows` training rows whose argmax logit is the label (float64)."""
    x, y = workload.data()
    a = x[:rows]
    for i, (w, b) in enumerate(params):
        a = a @ np.asarray(w, np.float64) + np.asarray(b, np.float64).reshape(1, -1)
        if i < len(params) - 1:
            a = sigmoid(a) if workload.activation == "sigmoid" else np.maximum(a, 0)
    return float(np.mean(np.argmax(a, axis=1) == np.argmax(y[:rows], axis=1)))


def eval_loss(workload, params, rows=4096):
    """Softmax CE (+ ½λΣw²) of `params` on the first `rows` training rows, NumPy float64."""
    x, y = workload.data()
    x, y = x[:rows], y[:rows]
    a = x
    for i, (w, b) in enumerate(params):
        w, b = np.asarray(w, np.float64), np.asarray(b, np.float64).reshape(1, -1)
        z = a @ w + b
        if i == len(params) - 1:
            break
        a = sigmoid(z) if workload.activation == "sigmoid" else np.maximum(z, 0)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    l2 = 0.5 * workload.l2 * sum(float(np.sum(np.asarray(w, np.float64) ** 2)) for w, _ in params)
    return float(-(y * logp).sum() / len(x)) + l2


def matmul_ceiling(workload, repeats=7, threads=1, dtype="float32"):
    """GFLOP/s of the step's matmuls alone in NumPy (as systems_jax.matmul_ceiling)."""
    rows, sizes = workload.batch, workload.sizes
    rng = np.random.default_rng(0)
    mats = [(rng.standard_normal((rows, a)).astype(dtype), rng.standard_normal((a, b)).astype(dtype),
             rng.standard_normal((rows, b)).astype(dtype), i > 0)
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
    flops = sum((6 if need_dx else 4) * rows * x.shape[1] * w.shape[1] for x, w, _, need_dx in mats)

    def step():
        for x, w, dy, need_dx in mats:
            np.dot(x, w)
            np.dot(x.T, dy)
            if need_dx:
                np.dot(dy, w.T)

    with blas_threads(threads):
        median, _ = median_time(step, repeats)
    return flops / median / 1e9
