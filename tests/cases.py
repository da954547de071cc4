"""Shared test tables (pytest puts this folder on ``sys.path``, beside ``conftest.py``)."""

OUTPUT_LOSS_PAIRS = {
    "sigmoid+bce": ("sigmoid", "binary_cross_entropy"),
    "softmax+ce": ("softmax", "softmax_cross_entropy"),
    "identity+se": ("identity", "squared_error"),
    "sigmoid+se": ("sigmoid", "squared_error"),
    "tanh+se": ("tanh", "squared_error"),
    "softmax+se": ("softmax", "squared_error"),
}
"""Every valid (output activation, loss) pair, by a readable test id."""
