"""Using a trained model: ``gru-exp predict`` (class probabilities for new texts) and ``gru-exp
export`` (a self-contained Paddle inference folder), both from what a run folder recorded."""
