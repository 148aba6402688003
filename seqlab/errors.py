"""The one exception seqlab raises for bad input: its message names the problem and the fix."""


class SeqlabError(ValueError):
    """User input (data, config, checkpoint) that seqlab cannot use, with the way to fix it."""
