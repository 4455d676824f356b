"""The notebook's GRU sentiment classifier, with optional true lengths for the GRU."""

from __future__ import annotations

from typing import Optional

import paddle
from paddle import nn


class GRUClassifier(nn.Layer):
    """Embedding -> Dropout -> GRU -> last layer's final state(s) -> Dropout -> Linear.

    Bidirectional: the forward and backward final states of the last layer are concatenated.
    ``dropout`` is used after the embedding, between GRU layers (only when num_layers > 1)
    and before the classifier, as in the notebook; ``layer_dropout`` overrides it between layers.
    """

    def __init__(
        self, vocab_size: int, embedding_size: int, hidden_size: int, num_layers: int,
        direction: str, dropout: float, layer_dropout: Optional[float] = None, num_classes: int = 2,
    ) -> None:
        super().__init__()
        self.num_directions = 2 if direction == "bidirectional" else 1
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(
            embedding_size, hidden_size, num_layers=num_layers, direction=direction,
            dropout=(dropout if layer_dropout is None else layer_dropout) if num_layers > 1 else 0.0,
        )
        self.classifier = nn.Linear(hidden_size * self.num_directions, num_classes)

    def forward(self, ids: paddle.Tensor, lengths: Optional[paddle.Tensor] = None) -> paddle.Tensor:
        # ids: [B, T] int64, lengths: [B] int64 or None (the GRU then also reads the padding)
        x = self.dropout(self.embedding(ids))  # [B, T, E]
        _, final = self.gru(x, sequence_length=lengths)  # final: [layers * dirs, B, H]
        last = final[-self.num_directions :]  # [dirs, B, H]: the last layer's fwd (and bwd) states
        features = paddle.concat(list(last), axis=-1)  # [B, dirs * H]
        return self.classifier(self.dropout(features))  # [B, num_classes] logits
