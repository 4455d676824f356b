"""The optimizer: paddle's Adam/AdamW over the model's parameters, and, with
``trainer.bag_update=rows``, a lazy Adam/AdamW over the rows of the n-gram bag a batch read.

Paddle's dense Adam updates all 262,144 x 16 rows of ``experiment=imdb_bigram``'s bag every step
(its optimizer step: 11.7 ms of a 98 ms step on one core, 4.1 ms with this) although a batch reads
about 15,000 of them; paddle's
own sparse path (``Embedding(sparse=True)`` + ``Adam(lazy_mode=True)``) did not help on a CPU
(docs/performance.md). :class:`RowAdam` applies paddle's Adam/AdamW arithmetic to the rows read
only, with the optimizer's step count for the bias correction, as TensorFlow's LazyAdam: a row a
batch did not read keeps its weights and moments (its momentum does not carry it on, weight decay
does not shrink it) until a batch reads it again.
"""

from __future__ import annotations

from typing import Any, Union

import paddle

from gru_exp.config.knobs import BagUpdate, RunConfig

BETA1, BETA2, EPSILON = 0.9, 0.999, 1e-8  # paddle's Adam/AdamW defaults, used by both
ROWS_KEY = "bag_rows."  # RowAdam's entries in the optimizer's state dict (checkpoints)


class RowAdam:
    """Adam (``weight_decay`` 0) or AdamW on the rows ``model.rows_read`` names, after backward:
    for each row p with gradient g, at optimizer step t (1-based), paddle's arithmetic

        p <- p (1 - lr wd);  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
        p <- p - lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps sqrt(1 - b2^t))
    """

    def __init__(self, model: paddle.nn.Layer, weight_decay: float) -> None:
        self.model, self.weight_decay = model, weight_decay
        table = model.bigrams.weight
        self.moment1, self.moment2 = paddle.zeros_like(table), paddle.zeros_like(table)  # [buckets, S]
        self.step_count = 0

    @paddle.no_grad()
    def step(self, lr: float) -> None:
        self.step_count += 1
        if self.model.rows_read is None:  # no forward since the last step (cannot happen in fit)
            return
        ids, read = self.model.rows_read  # [U], [U, S]: the distinct rows the batch read, their values then
        if read.grad is None:
            return
        grad, t = read.grad, self.step_count
        m = BETA1 * paddle.gather(self.moment1, ids) + (1.0 - BETA1) * grad  # [U, S]
        v = BETA2 * paddle.gather(self.moment2, ids) + (1.0 - BETA2) * grad * grad  # [U, S]
        correction = (1.0 - BETA2**t) ** 0.5
        lr_t = lr * correction / (1.0 - BETA1**t)
        rows = read * (1.0 - lr * self.weight_decay) - lr_t * m / (v.sqrt() + EPSILON * correction)  # [U, S]
        paddle.scatter_(self.model.bigrams.weight, ids, rows, overwrite=True)  # distinct ids: no collision
        paddle.scatter_(self.moment1, ids, m, overwrite=True)
        paddle.scatter_(self.moment2, ids, v, overwrite=True)

    def clear(self) -> None:
        self.model.rows_read = None

    def state_dict(self) -> dict[str, Any]:
        return {ROWS_KEY + "moment1": self.moment1, ROWS_KEY + "moment2": self.moment2,
                ROWS_KEY + "step": self.step_count}

    def set_state_dict(self, state: dict[str, Any]) -> None:
        self.moment1.set_value(state[ROWS_KEY + "moment1"])
        self.moment2.set_value(state[ROWS_KEY + "moment2"])
        self.step_count = int(state[ROWS_KEY + "step"])


class WithRowAdam:
    """The dense optimizer and a :class:`RowAdam` as one: what the loop and the checkpoints call
    (set_lr, get_lr, step, clear_grad, state_dict, set_state_dict) reaches both."""

    def __init__(self, dense: paddle.optimizer.Optimizer, rows: RowAdam) -> None:
        self.dense, self.rows = dense, rows

    def set_lr(self, lr: float) -> None:
        self.dense.set_lr(lr)

    def get_lr(self) -> float:
        return self.dense.get_lr()

    def step(self) -> None:
        self.dense.step()
        self.rows.step(self.dense.get_lr())

    def clear_grad(self) -> None:
        self.dense.clear_grad()
        self.rows.clear()

    def state_dict(self) -> dict[str, Any]:
        return {**self.dense.state_dict(), **self.rows.state_dict()}

    def set_state_dict(self, state: dict[str, Any]) -> None:
        if ROWS_KEY + "step" not in state:
            raise KeyError(f"{ROWS_KEY}step: the checkpoint's optimizer has no bag rows (trained with bag_update=dense?)")
        self.rows.set_state_dict(state)
        self.dense.set_state_dict({k: v for k, v in state.items() if not k.startswith(ROWS_KEY)})


Optimizer = Union[paddle.optimizer.Optimizer, WithRowAdam]  # what TrainState holds and the loop steps


def make_optimizer(rc: RunConfig, model: paddle.nn.Layer) -> Optimizer:
    """Adam, or AdamW with ``trainer.weight_decay`` > 0 (decoupled), over the model's parameters,
    with global-norm clipping when ``trainer.grad_clip`` > 0; with ``trainer.bag_update=rows``
    (validation: needs a bag, no clipping, no AMP) the bag's table is left to a :class:`RowAdam`."""
    t = rc.trainer
    rows = t.bag_update == BagUpdate.rows and rc.model.bigram_buckets > 0
    # not the bag's table with bag_update=rows, nor a prefit n-gram model's weights: both are stop_gradient
    params = [p for p in model.parameters() if not p.stop_gradient]
    clip = paddle.nn.ClipGradByGlobalNorm(t.grad_clip) if t.grad_clip > 0 else None
    if t.weight_decay > 0:  # decoupled weight decay; plain Adam otherwise, bit for bit as before the knob
        dense = paddle.optimizer.AdamW(learning_rate=t.lr, parameters=params, grad_clip=clip, weight_decay=t.weight_decay)
    else:
        dense = paddle.optimizer.Adam(learning_rate=t.lr, parameters=params, grad_clip=clip)
    return WithRowAdam(dense, RowAdam(model, t.weight_decay)) if rows else dense
