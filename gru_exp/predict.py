"""``python -m gru_exp.predict``: the same as ``gru-exp predict`` (:mod:`gru_exp.use.predict`)."""

import sys

from gru_exp.use.predict import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m gru_exp.predict"))
