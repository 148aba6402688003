"""One LightningDataModule per family of sequence data."""

from seqlab.data.dna import DnaDataModule
from seqlab.data.module import SeqDataModule
from seqlab.data.multitask import MultiTaskDataModule
from seqlab.data.text import TextDataModule

__all__ = ["DnaDataModule", "MultiTaskDataModule", "SeqDataModule", "TextDataModule"]
