"""The README's "Using it" snippet, verbatim, so its quoted accuracy is reproducible:

    python scripts/readme_api_snippet.py        # prints the test accuracy (x64 off, float32)
"""
import jax
import optax

import fnnet

x_train, y_train, x_test, y_test = fnnet.datasets.digits()        # offline, seeded
net = fnnet.mlp([64, 128, 128, 10], activation="sigmoid",
                loss="softmax_cross_entropy", w_init="normal")    # hashable: a static jit arg
params = fnnet.init(net, jax.random.key(0))                       # tuple of DenseParams(w, b) / ()

out = fnnet.forward(net, params, x_train)                          # logits [1617, 10]
l, grads = fnnet.value_and_grad(net, params, x_train, y_train)     # hand-written backward
result = fnnet.fit(net, params, x_train, y_train,                 # FitResult: .params, .history,
                   optimizer=optax.sgd(0.5), epochs=1500, progress=False)   # .opt_state, .state, .epoch
params = result.params
print(fnnet.accuracy(net, params, x_test, y_test))
