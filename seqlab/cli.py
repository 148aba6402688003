"""The command line: ``python -m seqlab fit|validate|test|predict --config configs/<task>.yaml``."""

from __future__ import annotations

import importlib
import logging
import sys
import warnings
from pathlib import Path

import lightning as L
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_only

from seqlab.callbacks import JsonlPredictionWriter
from seqlab.checkpoints import check_checkpoint_file, exported_model_error
from seqlab.config_errors import ARGV, check_config_files, import_class, plain_option_error, raising_task
from seqlab.errors import SeqlabError, first_line
from seqlab.model import SeqModel

SPECIAL_CKPT = ("last", "best", "hpc", "registry")
# Model settings of how the weights run, not what they are: a run from a checkpoint takes them from its config
# (chunk_size bounds memory but restarts the state at chunk borders: a line says when it differs from the checkpoint's).
RUNTIME_KEYS = ("impl", "chunk_size", "chunk_batch", "float32_lstm")
# Model settings that only training reads: validate, test and predict do not mention their differences.
TRAINING_KEYS = (
    "dropout",
    "input_dropout",
    "head_dropout",
    "loss_weights",
    "label_smoothing",
    "backbone_from",
    "freeze_backbone_epochs",
    "lr_schedule",
    "warmup",
)


class SeqlabArgumentParser(LightningArgumentParser):
    """A wrong key or value ends in three lines (a short usage, where to find the keys, what is
    wrong), not in the usage of every option."""

    def print_usage(self, file=None) -> None:
        (file or sys.stdout).write(f"usage: {self.prog} [--config CONFIG] [--key=value ...]\n")

    def error(self, message: str, ex: Exception | None = None):
        if self.exit_on_error:  # the parser that reports to the user, not one jsonargparse nests for a class
            message = plain_option_error(message, self.prog.replace(" [options]", ""))
        return super().error(message, ex)


def dirpaths(config) -> list[Path]:
    """The ``dirpath`` folders of the config's ModelCheckpoint callbacks."""
    callbacks = (config.get("trainer") or {}).get("callbacks") or []
    folders = [cb.init_args.get("dirpath") for cb in callbacks if "ModelCheckpoint" in str(cb.get("class_path"))]
    return [Path(f).expanduser() for f in folders if f]


def newest_last_checkpoint(config, required: bool = True, option: str = "last") -> str | None:
    """``--ckpt_path last`` outside fit: the newest ``last*.ckpt`` in the ``dirpath`` of the
    config's ModelCheckpoint callbacks (as every shipped config sets one), found before the run so
    the checkpoint's vocabulary, statistics and model settings are read as for a path (a resumed
    fit too). None found is an error where ``required``: Lightning would warn and evaluate
    untrained weights."""
    folders = dirpaths(config)
    found = [p for folder in folders if folder.is_dir() for p in folder.glob("last*.ckpt")]
    if not found and not required:
        return None
    if not found:
        where = ", ".join(map(str, folders)) or "no folder (no ModelCheckpoint of the config sets a dirpath)"
        raise SeqlabError(f"--ckpt_path {option}: no last*.ckpt in {where}. Run fit with this config first, or give the checkpoint's path.")
    return str(max(found, key=lambda p: p.stat().st_mtime))


def best_checkpoint(config) -> str:
    """``--ckpt_path best`` outside fit: the best checkpoint that the newest ``last*.ckpt`` of the
    config's folder records (its ModelCheckpoint's ``best_model_path``; without a monitor, the
    newest kept epoch)."""
    from seqlab.checkpoints import read_checkpoint

    last = newest_last_checkpoint(config, option="best")
    states = (read_checkpoint(last).get("callbacks") or {}).items()
    recorded = [state.get("best_model_path") for name, state in states if "ModelCheckpoint" in name and isinstance(state, dict)]
    for path in recorded:  # an absolute path; beside last*.ckpt when the run folder was moved or copied
        for candidate in (Path(path), Path(last).parent / Path(path).name) if path else ():
            if candidate.is_file():
                return str(candidate)
    missing = f" ({', '.join(p for p in recorded if p)} no longer exists)" if any(recorded) else ""
    raise SeqlabError(f"--ckpt_path best: {last} records no best checkpoint{missing}. Give the checkpoint's path, or --ckpt_path last.")


def is_progress_bar(callback) -> bool:
    """Whether a callback of a parsed config (a class_path namespace, or an instance) is a progress bar."""
    from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar

    if isinstance(callback, ProgressBar):
        return True
    try:
        cls = import_class(str(getattr(callback, "class_path", "") or ""))
    except (ImportError, AttributeError, ValueError):
        return False
    return isinstance(cls, type) and issubclass(cls, ProgressBar)


class SeqlabCLI(LightningCLI):
    """Links the data's task specs into the model and checks checkpoint paths early."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.specs", "model.specs", apply_on="instantiate")
        parser.add_lightning_class_args(JsonlPredictionWriter, "prediction_writer")
        # seqlab's length-bucketing samplers give each process its own share themselves.
        parser.set_defaults({"trainer.use_distributed_sampler": False})

    def _parse_ckpt_path(self) -> None:
        """With ``--ckpt_path``, Lightning replaces the config's model settings by the checkpoint's.
        seqlab keeps the config's settings of how the weights run (``RUNTIME_KEYS``: e.g. chunking
        a long input at predict time), and says which other settings the checkpoint overrides. A
        file that is no checkpoint (or a damaged one) stops with a message, not a torch traceback."""
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else self.config
        self.notices = []
        if subcommand in ("validate", "test", "predict") and not config.get("ckpt_path"):
            raise SeqlabError(
                f"python -m seqlab {subcommand} needs a trained model: give --ckpt_path <file.ckpt>, or --ckpt_path last for the "
                "newest last*.ckpt this config's fit wrote. (Without one it would run freshly initialised weights.)"
            )
        if config.get("ckpt_path") == "best":  # Lightning's "best" means only the best of a fit in the same process
            if subcommand == "fit":
                raise SeqlabError("fit --ckpt_path best: a fit resumes from --ckpt_path last (the newest last*.ckpt) or a .ckpt path.")
            config.ckpt_path = best_checkpoint(config)
        if config.get("ckpt_path") == "last":  # a file: its preprocessing and model settings are read, as for a path
            if subcommand in ("validate", "test", "predict"):
                config.ckpt_path = newest_last_checkpoint(config)
            elif subcommand == "fit":
                found = newest_last_checkpoint(config, required=False)
                if found is None and dirpaths(config) and rank_zero_only.rank == 0:  # Lightning's own notice would advise save_last, which is set
                    print(f"seqlab: no last*.ckpt in {', '.join(map(str, dirpaths(config)))} yet: the fit starts afresh.", file=sys.stderr)
                config.ckpt_path = found or (None if dirpaths(config) else "last")  # no dirpath: Lightning's own search
        before = {k: v for k, v in vars(config.get("model") or {}).items() if k not in ("specs", "optimizer")}
        try:
            super()._parse_ckpt_path()
        except Exception as err:
            exported = exported_model_error(config.ckpt_path) if Path(str(config.get("ckpt_path"))).is_file() else None
            if exported is not None:
                raise exported from None
            raise SeqlabError(
                f"Checkpoint {config.get('ckpt_path')} could not be read ({first_line(err)}). It is not a seqlab/Lightning checkpoint "
                "or it is damaged: give --ckpt_path a .ckpt file that a fit wrote."
            ) from err
        model = (self.config[subcommand] if subcommand else self.config).get("model")  # super() replaced self.config: read it afresh
        if model is None or not before:
            return
        chunks = before.get("chunk_size"), model.get("chunk_size")
        for key in RUNTIME_KEYS:
            if key in before:
                model[key] = before[key]
        ignore = RUNTIME_KEYS + (TRAINING_KEYS if subcommand != "fit" else ())
        overridden = [f"{k}={model[k]!r} (config: {v!r})" for k, v in before.items() if k not in ignore and k in model and model[k] != v]
        if overridden:  # said once the run starts: a checkpoint of another task stops before that
            self.notices.append(f"seqlab: the checkpoint's model settings apply: {', '.join(overridden)}.")
        if "chunk_size" in before and chunks[0] != chunks[1]:
            self.notices.append(
                f"seqlab: model.chunk_size={chunks[0]!r} from the config, the checkpoint was trained with {chunks[1]!r}: the LSTM state "
                "restarts at every chunk border, so outputs differ a little from the checkpoint's setting "
                f"(--model.chunk_size={'null' if chunks[1] is None else chunks[1]} matches it)."
            )

    notices: list[str]  # lines about the checkpoint, printed when the command starts (set by _parse_ckpt_path)

    def print_notices(self) -> None:
        if rank_zero_only.rank == 0:
            for line in getattr(self, "notices", []):
                print(line, file=sys.stderr)
        self.notices = []

    before_fit = before_validate = before_test = before_predict = print_notices

    def instantiate_trainer(self, **kwargs):
        """Lightning's refusals of trainer settings (an accelerator this machine lacks, an unknown
        strategy) as a one-line error instead of a traceback."""
        from lightning.fabric.utilities.exceptions import MisconfigurationException

        try:
            return super().instantiate_trainer(**kwargs)
        except (MisconfigurationException, ValueError) as err:
            hint = " Use --trainer.accelerator auto (or cpu)." if "accelerator" in str(err) or "gpu backend" in str(err) else ""
            raise SeqlabError(f"Lightning refused the trainer settings: {first_line(err, 400)}{hint}") from err

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        if self.subcommand == "predict":  # predictions go to a file and no metric is logged: no empty W&B run
            config.trainer.logger = False
            given = (config.get("data") or {}).get("init_args", {}).get("predict_input")
            if isinstance(given, str) and given.strip().startswith("[") and given.strip().endswith("]"):  # a list parsed as a string
                raise SeqlabError(
                    f"data.predict_input {given!r} looks like a list but reached seqlab as one string (a missing comma, or quotes "
                    """around it in a YAML file): write '["a great film", "dull"]'. To predict on this very text, put it in a .txt file."""
                )
        if config.trainer.get("enable_progress_bar") is False and config.trainer.get("callbacks"):  # the configs' bar would make
            config.trainer.callbacks = [c for c in config.trainer.callbacks if not is_progress_bar(c)]  # Lightning refuse the run
        ckpt = config.get("ckpt_path")
        if ckpt and ckpt not in SPECIAL_CKPT:
            check_checkpoint_file(ckpt, "--ckpt_path")
            # Evaluate and predict with the vocabulary/statistics the checkpoint was trained with.
            if self.subcommand in ("validate", "test", "predict") and "preprocessing_from" in config.data.init_args:
                if not config.data.init_args.preprocessing_from:
                    config.data.init_args.preprocessing_from = ckpt


# Commands beside Lightning's fit/validate/test/predict: name -> "module:function(args)".
TOOLS: dict[str, str] = {"export": "seqlab.export:main", "explain": "seqlab.explain:main"}


EPILOG = (
    "Two more commands: python -m seqlab export --help (one task to TorchScript or ONNX) and "
    "python -m seqlab explain --help (gate and cell-state figures, token attributions)."
)


def run_tool(name: str, args: list[str]):
    module, function = TOOLS[name].split(":")
    return getattr(importlib.import_module(module), function)(args)


def _not_a_tip(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("💡 Tip")


def quiet_lightning_notices() -> None:
    """Notices Lightning prints on every command that say nothing about the run: its "💡 Tip"
    advertisements (for its hosted logger and model registry), torch 2.13's deprecation of a
    pytree check inside Lightning 2.6 itself, and, in a distributed run, the advice to log the
    ``val/``/``test/`` metrics with ``sync_dist=True``: they are reduced over the processes before
    they are logged (torchmetrics' ``compute``, the confusion counts' ``strategy.reduce``). Also
    its note that a ``list`` validation loader is empty: the empty list is how a DataModule with
    ``data.val_size: 0`` says there is no validation split (an empty DataLoader still warns)."""
    warnings.filterwarnings("ignore", message=r".*LeafSpec", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r"Total length of `list` across ranks is zero")
    warnings.filterwarnings("ignore", message=r"It is recommended to use `self\.log\('(val|test)/.*sync_dist=True")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_not_a_tip)  # (added once: the same function)


def name_figures() -> None:
    """Say which PNG reports the command wrote (plots/, when W&B is off), once, at its end."""
    from seqlab.callbacks import FIGURES_WRITTEN

    if FIGURES_WRITTEN and rank_zero_only.rank == 0:
        print(f"seqlab: figures: {', '.join(str(p) for p in FIGURES_WRITTEN)}", file=sys.stderr)
    FIGURES_WRITTEN.clear()


def main(args: list[str] | None = None) -> SeqlabCLI | None:
    """Entry point of ``seqlab`` and ``python -m seqlab``; user errors print one paragraph and exit 2."""
    argv = sys.argv[1:] if args is None else args
    ARGV[:] = argv  # for error messages that depend on where an option was given
    quiet_lightning_notices()
    try:
        if argv and argv[0] in TOOLS:
            return run_tool(argv[0], argv[1:])
        check_config_files()
        cli = SeqlabCLI(
            SeqModel,
            L.LightningDataModule,
            subclass_mode_data=True,
            save_config_kwargs={"overwrite": True},
            parser_class=SeqlabArgumentParser,
            parser_kwargs={"prog": "python -m seqlab", "epilog": EPILOG, "allow_abbrev": False},
            auto_configure_optimizers=False,
            args=args,
        )
        name_figures()
        return cli
    except (SeqlabError, ValueError) as err:
        cause = err
        while cause is not None and not isinstance(cause, SeqlabError):
            cause = cause.__cause__  # jsonargparse wraps errors raised while it instantiates classes
        if cause is None:
            raise
        print(f"seqlab: error: {raising_task(cause)}{cause}", file=sys.stderr)
        raise SystemExit(2) from None
