"""Exceptions that carry a message meant for the user.

Library code raises these for anything caused by input (a bad file, a wrong argument, a missing
checkpoint). The CLI prints the message and exits non-zero instead of showing a traceback; anything
else that escapes is a bug in wavecraft.
"""


class WavecraftError(Exception):
    """Base class: a problem the user can fix, described in the message."""


class AudioReadError(WavecraftError):
    """An audio file is missing, empty or cannot be decoded."""


class CheckpointError(WavecraftError):
    """A checkpoint is missing, incomplete or of an unknown format."""


class BitstreamError(WavecraftError):
    """A compressed .wcc file is truncated, corrupted, foreign or from another codec."""


class ConfigError(WavecraftError):
    """A configuration file or override is invalid."""
