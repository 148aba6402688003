"""The command line: ``python -m seqlab fit|validate|test|predict --config configs/<task>.yaml``."""

from __future__ import annotations

import importlib
import logging
import re
import sys
import warnings
from pathlib import Path

import lightning as L
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_only

from seqlab.callbacks import JsonlPredictionWriter
from seqlab.checkpoints import check_checkpoint_file, exported_model_error
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


def close_names(name: str, cls: type) -> list[str]:
    """The init arguments of ``cls`` spelled most like ``name`` (a misspelt option); an ``__init__``
    that passes ``**kwargs`` on adds its base class's arguments."""
    import difflib
    import inspect

    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(vars(klass)["__init__"]).parameters.values()
        names += [p.name for p in params if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return difflib.get_close_matches(name, list(dict.fromkeys(names)), n=3)


def type_names(text: str) -> str:
    """jsonargparse's ``<class 'int'>`` as ``int`` (``NoneType`` as ``None``)."""
    return re.sub(r"<class '(?:builtins\.)?([\w.]+)'>", r"\1", text).replace("NoneType", "None")


def expected_types(expected: str, union: bool) -> str:
    """jsonargparse's expected type as words: ``int``, ``one of 'a', 'b'``; a union's types joined by "or"."""
    if union:
        return " or ".join(type_names(t.strip()) for t in re.split(r",\s*(?=<|typing|\w+\[)", expected))
    return re.sub(r"typing\.Literal\[(.*)\]", r"one of \1", type_names(expected))


def import_class(class_path: str):
    """The object a config's ``class_path`` (``package.module.Name``) names."""
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def shipped_configs() -> str:
    """The configs a user can start from: those in ./configs, else in the repository seqlab runs from."""
    for folder in (Path("configs"), Path(__file__).resolve().parents[1] / "configs"):
        found = sorted(folder.glob("*.yaml"))
        if found:
            return ", ".join(str(p) for p in found)
    return "configs/<task>.yaml of the seqlab repository"


def plain_option_error(message: str, prog: str = "python -m seqlab fit") -> str:
    """An unknown option in one line, with the options spelled most like it. jsonargparse reports
    one of ``data`` inside a dump of the union of data module classes, and one of ``model`` or
    ``trainer`` without suggestions."""
    # (only the outermost class: a nested one, a task of a multi-task config, keeps jsonargparse's full text)
    in_class = r"Parser key \"(\w+(?:\.\w+)?)\":(?:(?!Parser key).)*?class_path '([\w.]+)':\s*"  # data's (trainer.logger's) key, its class_path
    wrong_value = re.match(in_class + r"Parser key \"(\w+)\":\s*Expected an? (.+?)\. Got value: ([^\n]*)", message, re.S)
    wrong_union = re.match(  # an optional option (int | None ...)
        in_class + r"Parser key \"(\w+)\":\s*Does not validate against any of the Union subtypes\s*Subtypes: \[([^\n]*)\].*?Given value: ([^\n]*)",
        message,
        re.S,
    )
    if wrong_value or wrong_union:
        key, class_path, option, expected, got = (wrong_value or wrong_union).groups()
        return f"{key}.{option} must be {expected_types(expected, bool(wrong_union))}; got {got}. All options: {prog} --{key}.help {class_path}"
    top_value = re.fullmatch(r"Parser key \"((?:model|trainer)\.\w+)\":\s*Expected an? (.+?)\. Got value: ([^\n]*)\s*", message, re.S)
    top_union = re.fullmatch(
        r"Parser key \"((?:model|trainer)\.\w+)\":\s*Does not validate against any of the Union subtypes\s*Subtypes: \[([^\n]*)\].*?"
        r"Given value: ([^\n]*)\s*",
        message,
        re.S,
    )
    if (top_value or top_union) and "class_path" not in message:  # a plain model or trainer option of the wrong type
        key, expected, got = (top_value or top_union).groups()
        return f"{key} must be {expected_types(expected, bool(top_union))}; got {got}. All options: {prog} --help"
    commands = "fit, validate, test, predict, export or explain"
    if re.match(r'expected "subcommand" to be one of', message):
        return f"Give a command: {commands}; e.g. python -m seqlab fit --config configs/imdb.yaml (export, explain: --help)."
    unknown = re.match(r"argument subcommand: invalid choice: '([^']*)'", message)
    if unknown:
        return f"Unknown command {unknown.group(1)!r}: python -m seqlab takes {commands}."
    no_data = re.fullmatch(r"the following arguments are required: (\w+)\.data", message.strip())
    if no_data:
        return f"python -m seqlab {no_data.group(1)} needs a config (--config) naming the data and the model; shipped: {shipped_configs()}."
    dumped = re.match(in_class + r"Option '(\w+)' is not accepted", message, re.S)
    if dumped:
        key, class_path, option = dumped.groups()
        close = close_names(option, import_class(class_path))
    else:
        command_line = re.fullmatch(r"unrecognized arguments: --(model|trainer)\.(\w+)(?:[= ]\S*)?", message.strip())
        in_yaml = re.fullmatch(r"Subcommand '(\w+)' does not accept option '(model|trainer)\.(\w+)'", message.strip())
        if in_yaml:  # reported by the top parser: the options are listed by the subcommand's help
            prog, key, option = f"{prog} {in_yaml.group(1)}", in_yaml.group(2), in_yaml.group(3)
        elif command_line:
            key, option = command_line.groups()
        else:
            return nested_config_error(message, prog) or message
        class_path = None
        close = close_names(option, SeqModel if key == "model" else L.Trainer)
    where = f" of {class_path}" if class_path else ""
    hint = f" Did you mean {' or '.join(f'{key}.{c}' for c in close)}?" if close else ""
    listing = f"--{key}.help {class_path}" if class_path else "--help"
    last = (
        f" (--{key}.<option> goes to the last callback in the list, here {class_path}; to change another one, edit it in a copy of the config.)"
        if key == "trainer.callbacks" and class_path and any(a.split("=")[0].endswith(f".{option}") and a.startswith(f"--{key}.") for a in ARGV)
        else ""
    )
    return f"{key}.{option} is not an option{where}.{hint} All options: {prog} {listing}{last}"


def config_files() -> list[str]:
    """The ``--config`` files of the running command line."""
    files = [ARGV[i + 1] for i, a in enumerate(ARGV[:-1]) if a in ("--config", "-c")]
    return files + [a.split("=", 1)[1] for a in ARGV if a.startswith("--config=")]


def where_in_configs(match) -> dict[str, dict]:
    """The mappings in the command's YAML configs for which ``match(mapping)`` holds, by their dotted
    place (``data.tasks.imdb``; ``init_args`` left out, as on the command line)."""
    import yaml

    found: dict[str, dict] = {}

    def walk(node, path: list[str]) -> None:
        if isinstance(node, dict):
            if match(node):
                found.setdefault(".".join(path), node)
            for k, v in node.items():
                walk(v, path if k == "init_args" else [*path, str(k)])
        elif isinstance(node, list):  # callbacks: the dotted name has no index
            for v in node:
                walk(v, path)

    for file in config_files():
        try:
            walk(yaml.safe_load(Path(file).read_text()), [])
        except (OSError, yaml.YAMLError):
            continue
    return found


def close_class(class_path: str, module: str, name: str) -> str | None:
    """``class_path`` with its misspelt part ``name`` (missing from ``module``) replaced by the
    closest name ``module`` has, when the result imports."""
    import difflib

    try:
        names = dir(importlib.import_module(module))
    except ImportError:
        return None
    for close in difflib.get_close_matches(name, names, n=3):
        candidate = class_path.replace(f"{module}.{name}", f"{module}.{close}", 1)
        try:
            if isinstance(import_class(candidate), type):
                return candidate
        except (ImportError, AttributeError, ValueError):
            continue
    return None


def nested_config_error(message: str, prog: str) -> str | None:
    """One line for what jsonargparse reports deep inside a dump: in a class given by ``class_path``
    below the top level (a task of a multi-task config, the optimizer), an unknown option or one of
    the wrong type; a ``class_path`` that names no class; options written beside ``class_path``
    instead of under ``init_args``. None for other messages."""
    top = re.match(r'Parser key "([\w.]+)":', message)
    classes = re.findall(r"Problem with given class_path '([\w.]+)'", message) or re.findall(r"class_path='([\w.]+)'", message)
    if not top:
        return None
    key = top.group(1)
    missing = re.search(r"module '([\w.]+)' has no attribute '(\w+)'|No module named '([\w.]+)'", message)
    if missing and classes:
        bad = classes[-1]
        places = list(where_in_configs(lambda node: node.get("class_path") == bad)) or [key]
        reason = missing.group(0)
        close = close_class(bad, missing.group(1), missing.group(2)) if missing.group(1) else None
        hint = f" Did you mean {close}?" if close else ""
        return f"{' and '.join(places)}.class_path {bad} names no class ({reason}).{hint}"
    if "Not a valid subclass" in message:
        fields = {"class_path", "init_args", "dict_kwargs"}
        for place, node in where_in_configs(lambda node: "class_path" in node and set(node) - fields).items():
            beside = ", ".join(str(k) for k in node if k not in fields)
            return (
                f"{place}: {beside} stands beside class_path {node['class_path']}; a class's options go under its init_args "
                f"(class_path: {node['class_path']}, then init_args: with {beside} indented below it)."
            )
        return None
    unknown = re.search(r"Option '(\w+)' is not accepted", message)
    wrong = re.search(r'Parser key "(\w+)":\s*Expected an? (.+?)\. Got value: ([^\n]*)', message)
    if not classes or not (unknown or wrong):
        return None
    class_path, option = classes[-1], (unknown or wrong).group(1)
    try:
        cls = import_class(class_path)
    except (ImportError, AttributeError, ValueError):
        return None
    given = re.search(r"NestedArg\(key='([\w.]+)'", message)
    if given:  # on the command line: --data.tasks.imdb.init_args.batchsize=3
        places = [".".join(p for p in f"{key}.{given.group(1)}".split(".")[:-1] if p != "init_args")]
    else:
        places = list(where_in_configs(lambda node: node.get("class_path") == class_path and option in (node.get("init_args") or {})))
    place = places[0] if places else key  # not in a config file: given on the command line, e.g. --model.optimizer.lrr
    listing = f"All options: {prog} --{key}.help {class_path}"
    if wrong:
        return f"{place}.{option} must be {expected_types(wrong.group(2), False)}; got {wrong.group(3)}. {listing}"
    close = close_names(option, cls)
    hint = f" Did you mean {' or '.join(f'{place}.{c}' for c in close)}?" if close else ""
    return f"{place}.{option} is not an option of {class_path}.{hint} {listing}"


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


def check_config_files() -> None:
    """A YAML syntax error names its file and line (jsonargparse would say "<unicode string>"); an
    empty config, or one that is no mapping of keys, is named as such."""
    import yaml

    for path in config_files():
        if Path(path).is_file():
            with open(path) as f:
                try:
                    config = yaml.safe_load(f)
                except yaml.YAMLError as err:
                    raise SeqlabError(f"Config {path} is not valid YAML: {err}") from None
            if not isinstance(config, dict):
                what = "is empty" if config is None else f"holds a {type(config).__name__}, not keys and values"
                raise SeqlabError(
                    f"Config {path} {what}: a config maps trainer:, model: and data: to their settings. Start from a shipped one: "
                    f"{shipped_configs()}."
                )


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


ARGV: list[str] = []  # the command line of the running main()


def raising_task(err: BaseException) -> str:
    """``data.tasks.fsdd: `` when a task of a multi-task config refused its settings as it was built
    (its messages name them ``data.<key>``, as in the task's own config); else ``""``."""
    from seqlab.data.module import SeqDataModule

    tb, family = err.__traceback__, None
    while tb is not None:
        me = tb.tb_frame.f_locals.get("self") if tb.tb_frame.f_code.co_name == "__init__" else None
        family = type(me) if isinstance(me, SeqDataModule) else family
        tb = tb.tb_next
    if family is None:
        return ""
    named = [m.group(1) for a in ARGV if (m := re.match(r"--data\.tasks\.(\w+)\.", a))]
    places = [
        place
        for place in where_in_configs(lambda node: str(node.get("class_path", "")).rsplit(".", 1)[-1] == family.__name__)
        if place.startswith("data.tasks.")
    ]
    places = [p for p in places if p.rsplit(".", 1)[-1] in named] or places
    if not places:
        return ""
    return f"{places[0]}: " if len(places) == 1 else f"one of {', '.join(places)} ({family.__name__}): "


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
