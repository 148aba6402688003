"""SeqModel's losses."""

from __future__ import annotations

import functools

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
    for warmup in (1.5, -0.1):  # a share of the steps: 1.5 would never reach the peak rate
        with pytest.raises(SeqlabError, match=rf"model.warmup is a share of all training steps and must be in \[0, 1\].*got {warmup}"):
            SeqModel(SPEECH, warmup=warmup)
    assert SeqModel(SPEECH, warmup=1.0).warmup == 1.0  # a rise over the whole run, to the peak at its last step


def test_an_ensemble_trains_each_member_on_its_own_loss_and_predicts_their_mean():
    batch = {"task": "jv", "x": torch.randn(5, 7, 3), "lengths": torch.tensor([7, 6, 5, 3, 1]), "y": torch.tensor([0, 1, 2, 3, 1])}
    torch.manual_seed(0)
    single = SeqModel(SPEECH, embed_dim=4, hidden_size=3)
    torch.manual_seed(0)
    model = SeqModel(SPEECH, embed_dim=4, hidden_size=3, members=3)
    weights = model.state_dict()
    assert {k: v for k, v in weights.items() if not k.startswith("ensemble.")}.keys() == single.state_dict().keys()
    for k, v in single.state_dict().items():
        torch.testing.assert_close(weights[k], v)  # member 0 is the model members=1 draws
        assert not torch.equal(weights[f"ensemble.0.{k}"], v)  # the others are drawn on their own

    model.eval()
    members = torch.stack([model(batch["x"], batch["lengths"], "jv", member=k).softmax(-1) for k in range(3)])  # (3, B, C)
    assert not torch.allclose(members[0], members[1])
    torch.testing.assert_close(model.log_probabilities(batch).exp(), members.mean(0))
    loss, probs, _ = model.model_step(batch)  # evaluation: the mean's negative log-likelihood
    torch.testing.assert_close(loss, -members.mean(0).gather(1, batch["y"][:, None]).log().mean())
    torch.testing.assert_close(probs, members.mean(0))

    train_loss, _, _ = model.model_step(batch, training=True)  # training logs the mean of the members' own losses
    own = [-members[k].gather(1, batch["y"][:, None]).log().mean() for k in range(3)]
    torch.testing.assert_close(train_loss, torch.stack(own).mean())
    model.training_step(batch, 0).backward()  # and steps on their sum
    for k, modules in enumerate(model.member_modules()):
        params = [p for module in modules for p in module.parameters()]
        grads = torch.autograd.grad(own[k], params, retain_graph=True)  # member k's gradient is that of its own loss alone
        for p, g in zip(params, grads):
            torch.testing.assert_close(p.grad, g)


def test_gradient_clipping_applies_to_each_member_on_its_own():
    batch = {"task": "jv", "x": torch.randn(5, 7, 3), "lengths": torch.tensor([7, 6, 5, 3, 1]), "y": torch.tensor([0, 1, 2, 3, 1])}
    model = SeqModel(SPEECH, embed_dim=4, hidden_size=3, members=2)
    model.training_step(batch, 0).backward()
    first, second = ([p for module in modules for p in module.parameters()] for modules in model.member_modules())
    for p in second:
        p.grad *= 1000.0  # one member with large gradients
    norm = lambda params: torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))  # noqa: E731
    before = [p.grad.clone() for p in first]
    limit = 2 * float(norm(first))  # above the first member's norm, far below the second's
    model.configure_gradient_clipping(None, limit, "norm")
    for p, g in zip(first, before):
        torch.testing.assert_close(p.grad, g)  # not scaled down by the other member's norm
    assert float(norm(second)) == pytest.approx(limit, rel=1e-4)
    model.configure_gradient_clipping(None, 1e-3, "value")
    assert max(float(p.grad.abs().max()) for p in first + second) == pytest.approx(1e-3)


@pytest.mark.parametrize(
    "setting,message",
    [
        ({"num_layers": 0}, r"model.num_layers must be at least 1"),
        ({"hidden_size": 0, "embed_dim": -1}, r"model.embed_dim, model.hidden_size must be at least 1"),
        ({"chunk_size": 0}, r"model.chunk_size must be at least 1"),
        ({"dropout": 1.5}, r"model.dropout must be in \[0, 1\)"),
        ({"head_dropout": -0.1}, r"^model.head_dropout must be in \[0, 1\); got head_dropout=-0.1\.$"),
    ],
)
def test_sizes_and_rates_out_of_range_are_errors_naming_the_key(setting, message):
    with pytest.raises(SeqlabError, match=message):
        SeqModel(SPEECH, **setting)


def test_the_convolutional_branch_is_refused_in_a_multi_task_model():
    two = {**SPEECH, "jv2": {**SPEECH["jv"], "name": "jv2", "feature_dim": 5}}
    with pytest.raises(SeqlabError, match=r"fcn_width works in a one-task model: .* \(jv, jv2\)\. Set model.fcn_width: 0"):
        SeqModel(two, fcn_width=4)
    assert SeqModel(SPEECH, fcn_width=4).encoder.output_size == 2 * 128 + 4
    assert SeqModel(two).encoder.fcn is None


def test_ensemble_settings_that_cannot_work_are_errors():
    with pytest.raises(SeqlabError, match="members must be at least 1"):
        SeqModel(SPEECH, members=0)
    with pytest.raises(SeqlabError, match="backbone_from copies one backbone"):
        SeqModel(SPEECH, members=2, backbone_from="runs/other.ckpt")


def test_accumulated_batches_of_two_tasks_keep_both_tasks_gradients():
    """With accumulate_grad_batches, the optimizer step follows several batches: it keeps the
    gradients of every task one of them had, and drops only those of tasks none had."""
    specs = {name: {**SPEECH["jv"], "name": name} for name in ("a", "b", "c")}
    model = SeqModel(specs, embed_dim=4, hidden_size=3)
    batch = {"x": torch.randn(2, 4, 3), "lengths": torch.tensor([4, 2]), "y": torch.tensor([0, 1])}

    def has_grad(task: str) -> bool:
        return all(p.grad is not None for p in (*model.inputs[task].parameters(), *model.heads[task].parameters()))

    model.training_step({**batch, "task": "a"}, 0).backward()
    model.training_step({**batch, "task": "b"}, 1).backward()
    model.on_before_optimizer_step(None)
    assert has_grad("a") and has_grad("b") and not has_grad("c")
    model.zero_grad(set_to_none=False)  # zeros, not None: only the step's own bookkeeping may drop task a's
    model.training_step({**batch, "task": "b"}, 2).backward()  # the next step: task b alone
    model.on_before_optimizer_step(None)
    assert has_grad("b") and not has_grad("a")


def test_the_logged_gradient_norm_leaves_out_gradients_the_step_drops():
    """Lightning runs GradNormLogger's hook before the model's, which drops idle gradients: the
    logged norm is that of the gradients the optimizer applies."""
    from seqlab.callbacks import GradNormLogger

    specs = {name: {**SPEECH["jv"], "name": name} for name in ("a", "b")}
    model = SeqModel(specs, embed_dim=4, hidden_size=3)
    batch = {"x": torch.randn(2, 4, 3), "lengths": torch.tensor([4, 2]), "y": torch.tensor([0, 1]), "task": "a"}
    model.training_step(batch, 0).backward()
    for p in model.heads["b"].parameters():
        p.grad = torch.ones_like(p)  # a gradient the step would drop (task b had no batch)
    logged = {}
    model.log = lambda name, value, **kwargs: logged.update({name: float(value)})
    GradNormLogger().on_before_optimizer_step(None, model, None)
    model.on_before_optimizer_step(None)
    applied = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    assert logged["train/grad_norm"] == pytest.approx(float(applied.norm()), rel=1e-6)


def test_a_task_spec_whose_input_and_sizes_disagree_is_refused():
    from seqlab.spec import TaskSpec

    for bad, says in [
        ({"input": "tokens", "feature_dim": 3}, r"tokens input needs vocab_size and no feature_dim; got \{'vocab_size': None, 'feature_dim': 3\}"),
        ({"input": "features", "feature_dim": 3, "vocab_size": 9}, "features input needs feature_dim and no vocab_size"),
        ({"input": "frames", "feature_dim": 3}, "input must be 'tokens' or 'features', not 'frames'"),
        ({"input": "tokens", "vocab_size": 9, "padding_idx": 1}, "padding_idx must be 0, the id seqlab's batches pad with; got 1"),
    ]:
        with pytest.raises(SeqlabError, match=rf"^Task 't': {says}"):
            TaskSpec(name="t", task_type="binary", labels=["a", "b"], **bad)


@pytest.mark.parametrize(
    "optimizer,expected", [(None, (torch.optim.AdamW, 1e-3)), (functools.partial(torch.optim.SGD, lr=0.25), (torch.optim.SGD, 0.25))]
)
def test_a_model_built_in_python_writes_a_checkpoint_that_loads_and_trains_on(tmp_path, optimizer, expected):
    """The optimizer is stored as {class_path, init_args}: a class in the checkpoint would make it unreadable with weights_only."""
    import lightning as L

    from seqlab.checkpoints import read_checkpoint

    torch.manual_seed(0)
    batch = {
        "task": "jv",
        "index": torch.arange(4),
        "x": torch.randn(4, 6, 3),
        "lengths": torch.tensor([6, 5, 3, 1]),
        "y": torch.tensor([0, 1, 2, 3]),
    }
    kwargs = {} if optimizer is None else {"optimizer": optimizer}
    model = SeqModel(SPEECH, embed_dim=4, hidden_size=3, lr_schedule="constant", **kwargs)
    trainer = L.Trainer(
        max_steps=1, limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(model, torch.utils.data.DataLoader([batch], batch_size=None))
    path = tmp_path / "python.ckpt"
    trainer.save_checkpoint(path)
    stored = read_checkpoint(path)["hyper_parameters"]["optimizer"]  # torch.load(weights_only=True) reads it
    assert stored["class_path"] == f"{expected[0].__module__}.{expected[0].__qualname__}"
    loaded = SeqModel.load_from_checkpoint(path)
    torch.testing.assert_close(loaded.state_dict(), model.state_dict())
    rebuilt = loaded.configure_optimizers()
    assert type(rebuilt) is expected[0] and rebuilt.param_groups[0]["lr"] == expected[1]
    from seqlab.model import storable_optimizer

    assert storable_optimizer(lambda params: None).startswith("<function") and storable_optimizer("<function x>") == "<function x>"
    loaded.optimizer = "<function <lambda>>"  # what another callable leaves in the record
    with pytest.raises(SeqlabError, match="cannot be rebuilt. Pass optimizer="):
        loaded.configure_optimizers()


def test_a_checkpoint_of_the_same_task_with_other_data_settings_names_what_differs():
    model = SeqModel(SPEECH, embed_dim=4, hidden_size=3)
    other = {"hyper_parameters": {"specs": {"jv": {**SPEECH["jv"], "feature_dim": 24}}}}  # e.g. trained with deltas
    with pytest.raises(SeqlabError, match=r"Task 'jv' in the checkpoint differs from this run's data \(feature_dim: 24 there, 3 here\)"):
        model.on_load_checkpoint(other)
    model.on_load_checkpoint({"hyper_parameters": {"specs": SPEECH}})  # the same spec, its defaults left out: accepted


def test_a_schedule_over_a_run_without_an_end_is_a_clear_error():
    import lightning as L

    batch = {"task": "jv", "index": torch.arange(2), "x": torch.randn(2, 4, 3), "lengths": torch.tensor([4, 2]), "y": torch.tensor([0, 1])}
    loader = torch.utils.data.DataLoader([batch], batch_size=None)
    for schedule in ({}, {"lr_schedule": "constant", "warmup": 0.1}):  # the cosine default, or a warmup share of the run
        trainer = L.Trainer(max_epochs=-1, max_time="00:00:00:05", limit_val_batches=0, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
        with pytest.raises(SeqlabError, match=r"needs a known number of steps, but the trainer runs without an end"):
            trainer.fit(SeqModel(SPEECH, embed_dim=4, hidden_size=3, **schedule), loader)
    trainer = L.Trainer(max_epochs=-1, max_steps=2, limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(SeqModel(SPEECH, embed_dim=4, hidden_size=3), loader)  # max_steps ends it: the schedule spans 2 steps
    assert trainer.global_step == 2 and trainer.lr_scheduler_configs[0].scheduler.get_last_lr()[0] == pytest.approx(0.0)
