"""seqlab's backbone in plain torch: usable in any training loop, no Lightning needed."""

from seqlab.nn.encoder import LSTMEncoder, WithPositions, lengths_mask, make_input_layer
from seqlab.nn.heads import HEADS, SequenceClassificationHead, make_head
from seqlab.nn.lstm import Gates, ReferenceLSTM, lstm_cell, reverse_padded

__all__ = [
    "HEADS",
    "Gates",
    "LSTMEncoder",
    "ReferenceLSTM",
    "SequenceClassificationHead",
    "WithPositions",
    "lengths_mask",
    "lstm_cell",
    "make_head",
    "make_input_layer",
    "reverse_padded",
]
