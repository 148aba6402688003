"""SeqModel's losses."""

from __future__ import annotations

import pytest
import torch

from seqlab.errors import SeqlabError
from seqlab.model import SeqModel

SPEECH = {"jv": {"name": "jv", "input": "features", "task_type": "multiclass", "labels": list("abcd"), "feature_dim": 3}}


def test_label_smoothing_changes_the_training_loss_only():
    torch.manual_seed(0)
    batch = {"task": "jv", "x": torch.randn(5, 7, 3), "lengths": torch.tensor([7, 6, 5, 3, 1]), "y": torch.tensor([0, 1, 2, 3, 1])}
    model = SeqModel(SPEECH, embed_dim=4, hidden_size=3, label_smoothing=0.2).eval()
    logp = model.log_probabilities(batch)
    nll = -logp.gather(1, batch["y"][:, None]).mean()
    uniform = -logp.mean()  # cross-entropy against 1/C on every class
    smoothed, probs, _ = model.model_step(batch, model.label_smoothing)
    torch.testing.assert_close(smoothed, 0.8 * nll + 0.2 * uniform)
    plain, _, _ = model.model_step(batch)  # what validation and test log
    torch.testing.assert_close(plain, nll)
    torch.testing.assert_close(probs.sum(1), torch.ones(5))
    with pytest.raises(SeqlabError, match="label_smoothing must be in"):
        SeqModel(SPEECH, label_smoothing=1.0)
