"""seqlab: multi-task LSTM sequence modelling on one shared encoder."""

__version__ = "0.1.0"
