"""One training run: data, model, loop, callbacks (progress, checkpoints, VisualDL), the run
record, and :func:`gru_exp.train.run.run_training` that ties them together.
``python -m gru_exp.train`` is its command line (:mod:`gru_exp.train.__main__`)."""
