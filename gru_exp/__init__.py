"""gru-exp: run, track and compare PaddlePaddle GRU experiments on IMDB."""

__version__ = "0.1.0"
