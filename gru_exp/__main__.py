"""``python -m gru_exp`` is ``python -m gru_exp.train``."""

from gru_exp.train import main

main()
