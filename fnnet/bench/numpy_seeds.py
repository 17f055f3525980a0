"""The seeds' NumPy training loops, re-typed as published (the `numpy-seed` rows of `fnnet bench`).

* seed 001 (W1): the post's `MyNN` full-batch loop (sigmoid hidden layers, softmax output,
  delta = (a3 - y) / n, in-place `-=` updates).
* seed 002 (W2): the post's full-batch loop (ReLU, softmax, L2, in-place updates).
* W3/W4 have no seed: the same style of loop (ReLU deltas as seed 002 writes them) with
  minibatches in data order and Adam written in NumPy (optax.adam's formula).

The runners that time them are in systems_numpy.py.
"""
from __future__ import annotations

import numpy as np

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
