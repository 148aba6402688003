"""One LightningDataModule per family of sequence data."""

from seqlab.data.activity import ActivityDataModule
from seqlab.data.dna import DnaDataModule
from seqlab.data.module import SeqDataModule
from seqlab.data.multitask import MultiTaskDataModule
from seqlab.data.speech import SpeechDataModule
from seqlab.data.text import TextDataModule

__all__ = ["ActivityDataModule", "DnaDataModule", "MultiTaskDataModule", "SeqDataModule", "SpeechDataModule", "TextDataModule"]
