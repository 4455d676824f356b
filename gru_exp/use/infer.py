"""The run's model with the weights it was scored with, and class probabilities for a Split, batched
exactly as evaluation batches (:func:`gru_exp.train.loop.eval_batches`). Imports paddle."""

from __future__ import annotations

import logging
import time
from typing import Optional

import numpy as np
import paddle
import paddle.nn.functional as F

from gru_exp.data.batches import iter_batches
from gru_exp.data.splits import Split
from gru_exp.errors import GruExpError
from gru_exp.train.checkpoints import model_checkpoint
from gru_exp.train.loop import eval_batches
from gru_exp.train.model import GRUClassifier
from gru_exp.use.runs import UsableRun

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 5.0


def load_model(run: UsableRun) -> GRUClassifier:
    """The model the run's config builds, holding the checkpoint that was scored on test, in eval
    mode; GruExpError (one paragraph) for a damaged checkpoint or one of another model or epoch."""
    model = GRUClassifier(run.vocab_size, run.config.model, num_classes=len(run.classes))
    ckpt = model_checkpoint(model, run.weights)  # ConfigError: damaged, not ours, other shapes
    if ckpt["epoch"] != run.epoch:
        raise GruExpError(f"{run.weights} holds epoch {ckpt['epoch']}, but {run.run_dir}'s record says epoch "
                          f"{run.epoch} was scored on test: its checkpoint and record disagree (changed after it "
                          "finished?). Give a run folder as its training left it.")
    model.set_state_dict(ckpt["model"])
    model.eval()
    return model


@paddle.no_grad()
def probabilities(model: paddle.nn.Layer, split: Split, use_lengths: bool, batch_size: int,
                  progress: Optional[str] = None) -> np.ndarray:
    """float32 [N, classes]: softmax of the model's logits for each text of ``split``, in its order.
    Batches of ``batch_size`` (sorted by length when the model reads lengths), as evaluation has
    them; a progress line on stderr every few seconds when ``progress`` names what is predicted."""
    batches = eval_batches(split, batch_size, use_lengths)
    out = np.zeros((len(split), model.classifier.weight.shape[1]), dtype=np.float32)
    start = last = time.perf_counter()
    done = 0
    for index, batch in zip(batches, iter_batches(split, batches, trim=use_lengths)):
        lengths = paddle.to_tensor(batch.lengths) if use_lengths else None
        logits = model(paddle.to_tensor(batch.ids), lengths)  # [B, C]
        out[index] = F.softmax(logits.astype("float32"), axis=-1).numpy()
        done += len(index)
        now = time.perf_counter()
        if progress and now - last >= PROGRESS_EVERY_S:
            log.info("%s: %d/%d texts (%.0f%%), %.0f texts/s", progress, done, len(split), 100 * done / len(split),
                     done / (now - start))
            last = now
    return out
