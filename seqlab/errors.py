"""The one exception seqlab raises for bad input: its message names the problem and the fix."""

from __future__ import annotations


class SeqlabError(ValueError):
    """User input (data, config, checkpoint) that seqlab cannot use, with the way to fix it."""


def out_of_range(section: str, wrong: dict[str, object], rule: str) -> SeqlabError:
    """``model.a, model.b must be <rule>; got a=1, b=2.`` for the settings in ``wrong``."""
    names = ", ".join(f"{section}.{k}" for k in wrong)
    return SeqlabError(f"{names} must be {rule}; got {', '.join(f'{k}={v}' for k, v in wrong.items())}.")


def first_line(err: BaseException, limit: int = 160) -> str:
    """An exception's type and the first line of its message, shortened (torch's load errors run to paragraphs)."""
    message = str(err).strip()
    if "WeightsUnpickler error:" in message:  # torch.load(weights_only=True): the reason comes after a paragraph on weights_only
        message = message.split("WeightsUnpickler error:", 1)[1].strip()
    text = message.splitlines()[0] if message else ""
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
