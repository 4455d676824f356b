"""``python -m gru_exp.export``: the same as ``gru-exp export`` (:mod:`gru_exp.use.export`)."""

import sys

from gru_exp.use.export import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m gru_exp.export"))
