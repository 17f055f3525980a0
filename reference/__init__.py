"""reference: an independent NumPy float64 oracle for fnnet.

The same layers, activations, losses and whole-network backward pass as fnnet,
written again from the seed tutorials' equations in plain NumPy float64. It imports
only numpy and the standard library (never jax, never fnnet), so agreeing with it is
evidence that fnnet's hand-written gradients are right, not that one piece of code
agrees with itself. Its own correctness is shown by finite differences in
tests/test_reference.py.

Layout: rows are samples. x: [batch, d_in], dense w: [d_in, d_out], b: [d_out].
Every layer twin is `<name>_forward(x, *params, **options)` and
`<name>_backward(x, *params, dy, **options)` (params in the fnnet layer's params order,
options keyword-only); losses are `<name>(out, target)` and `<name>_grad(out, target)`.
Networks are plain lists of layer dicts (see reference.network).
"""
from .layers.activations import (
    identity_forward, identity_backward, leaky_relu_forward, leaky_relu_backward, relu_forward, relu_backward,
    sigmoid_forward, sigmoid_backward, softmax_forward, softmax_backward, tanh_forward, tanh_backward,
    elu_forward, elu_backward, silu_forward, silu_backward, softplus_forward, softplus_backward,
    gelu_forward, gelu_backward,
)
from .layers.attention import attention_backward, attention_forward
from .layers.combinators import (
    positionwise_backward, positionwise_forward, residual_backward, residual_forward,
    sequential_backward, sequential_forward,
)
from .layers.conv_transpose import conv_transpose2d_backward, conv_transpose2d_forward
from .layers.embedding import (
    embedding_backward, embedding_forward, positional_backward, positional_forward,
    token_position_backward, token_position_forward,
)
from .layers.norm import (
    groupnorm_backward, groupnorm_forward, layernorm_backward, layernorm_forward,
    rmsnorm_backward, rmsnorm_forward,
)
from .layers.recurrent import (
    gru_backward, gru_forward, lstm_backward, lstm_forward, rnn_backward, rnn_forward,
)
from .layers.batchnorm import (
    batchnorm_backward, batchnorm_eval_backward, batchnorm_eval_forward, batchnorm_forward,
    batchnorm_running,
)
from .layers.conv import conv2d_backward, conv2d_forward
from .layers.dropout import dropout_backward, dropout_forward
from .layers.pool import avgpool2d_backward, avgpool2d_forward, maxpool2d_backward, maxpool2d_forward
from .layers.shape import reshape_backward, reshape_forward
from .layers.dense import dense_backward, dense_forward
from .losses_seq import sequence_cross_entropy, sequence_cross_entropy_grad
from .models.gpt import tiedlm_backward, tiedlm_forward
from .losses import (
    half_sse, half_sse_grad, l2_grad, l2_penalty, mse, mse_grad,
    sigmoid_binary_cross_entropy, sigmoid_binary_cross_entropy_grad,
    softmax_cross_entropy, softmax_cross_entropy_grad,
)
from .network import (
    accuracy, backward, forward, loss, predict, sgd_step, train_sgd,
)

__all__ = [
    # dense
    "dense_forward", "dense_backward",
    # activations
    "identity_forward", "identity_backward", "relu_forward", "relu_backward",
    "leaky_relu_forward", "leaky_relu_backward", "sigmoid_forward", "sigmoid_backward",
    "tanh_forward", "tanh_backward", "softmax_forward", "softmax_backward",
    "elu_forward", "elu_backward", "silu_forward", "silu_backward", "softplus_forward", "softplus_backward",
    # vision layers
    "conv2d_forward", "conv2d_backward", "maxpool2d_forward", "maxpool2d_backward",
    "avgpool2d_forward", "avgpool2d_backward", "reshape_forward", "reshape_backward",
    "dropout_forward", "dropout_backward", "batchnorm_forward", "batchnorm_backward",
    "batchnorm_running", "batchnorm_eval_forward", "batchnorm_eval_backward",
    "conv_transpose2d_forward", "conv_transpose2d_backward",
    # sequence layers, norms, recurrent cells, combinators
    "gelu_forward", "gelu_backward", "layernorm_forward", "layernorm_backward",
    "rmsnorm_forward", "rmsnorm_backward", "groupnorm_forward", "groupnorm_backward",
    "embedding_forward", "embedding_backward", "positional_forward", "positional_backward",
    "token_position_forward", "token_position_backward", "attention_forward", "attention_backward",
    "rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward", "gru_forward", "gru_backward",
    "residual_forward", "residual_backward", "sequential_forward", "sequential_backward",
    "positionwise_forward", "positionwise_backward", "tiedlm_forward", "tiedlm_backward",
    # losses
    "mse", "mse_grad", "half_sse", "half_sse_grad",
    "softmax_cross_entropy", "softmax_cross_entropy_grad",
    "sigmoid_binary_cross_entropy", "sigmoid_binary_cross_entropy_grad",
    "l2_penalty", "l2_grad", "sequence_cross_entropy", "sequence_cross_entropy_grad",
    # networks
    "forward", "loss", "backward", "sgd_step", "train_sgd", "predict", "accuracy",
]
