"""A small convolutional classifier for NHWC images, built from fnnet's layers.

    net = fnnet.cnn((8, 8, 1), classes=10)    # the bundled digits as images
    # [n, 8, 8, 1] -> Conv2D(32, 3x3, same) -> ReLU -> MaxPool2D(2)      [n, 4, 4, 32]
    #              -> Conv2D(64, 3x3, same) -> ReLU -> MaxPool2D(2)      [n, 2, 2, 64]
    #              -> Flatten -> Dense(128) -> ReLU -> Dense(10)          logits [n, 10]

Every layer is a plain fnnet layer with a hand-written backward, so fnnet.backprop, fit
and check_network work on it unchanged. Optional: BatchNorm after each convolution
(stateful: pass state=fnnet.init_state(net)) and Dropout before the last Dense
(stochastic: pass key=... in train mode).
"""
from __future__ import annotations

from fnnet import losses as _losses
from fnnet.layers import activations as _activations
from fnnet.validate import int_at_least
from fnnet.layers.image_inputs import image_shape
from fnnet.layers.batchnorm import BatchNorm
from fnnet.layers.conv import Conv2D
from fnnet.layers.dense import Dense
from fnnet.layers.dropout import Dropout
from fnnet.layers.pool import MaxPool2D
from fnnet.layers.shape import Flatten


def cnn(in_shape=(8, 8, 1), classes=10, conv=(32, 64), kernel=3, pool=2, dense=(128,), activation="relu",
        dropout=0.0, batchnorm=False, loss="softmax_cross_entropy", l2=0.0):
    """Conv blocks [Conv2D(f, kernel, 'same') (-> BatchNorm) -> activation -> MaxPool2D(pool)]
    for f in `conv`, then Flatten -> [Dense(d) -> activation] for d in `dense` (-> Dropout)
    -> Dense(classes), emitting logits for `loss`.

    in_shape: (H, W, C) of one image (NHWC). A block whose input is smaller than `pool`
    skips its pooling. dropout: rate in [0, 1) before the output layer (0 = none).
    """
    from fnnet.network import Network
    h, w, c = image_shape("cnn", in_shape)
    int_at_least("cnn", "classes", classes)
    if not conv:
        raise ValueError("cnn: conv must list at least one filter count, e.g. (32, 64)")
    loss = _losses.get(loss)
    act = _activations.get(activation)
    layers = []
    for f in conv:
        layers.append(Conv2D(int_at_least("cnn", "conv filters", f), kernel, padding="same"))
        if batchnorm:
            layers.append(BatchNorm())
        layers.append(act)
        if h >= pool and w >= pool:
            layers.append(MaxPool2D(pool))
            h, w = h // pool, w // pool
    layers.append(Flatten())
    for d in dense:
        layers += [Dense(int_at_least("cnn", "dense units", d), w_init="he_normal"), act]
    if dropout:
        layers.append(Dropout(dropout))
    layers.append(Dense(classes))
    return Network(tuple(layers), loss, tuple(in_shape), l2)
