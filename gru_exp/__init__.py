"""gru-exp: run, track and compare PaddlePaddle GRU experiments on IMDB."""

import warnings

# Paddle warns "No ccache found" on every import when no C++ compiler cache is installed; it is
# about building custom C++ operators, which gru-exp never does. One precise filter, set before any
# gru-exp module can import paddle.
warnings.filterwarnings("ignore", message="No ccache found", category=UserWarning)

try:
    from importlib.metadata import version as _version

    __version__ = _version("gru-exp")
except Exception:  # a bare source tree, not installed
    __version__ = "unknown"
