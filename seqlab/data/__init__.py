"""One LightningDataModule per family of sequence data."""

from seqlab.data.module import SeqDataModule
from seqlab.data.text import TextDataModule

__all__ = ["SeqDataModule", "TextDataModule"]
