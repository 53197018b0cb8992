"""The one exception type a user ever sees from microgpt.

Every problem caused by input (a config, a data file, a checkpoint, a prompt,
a missing optional package) is raised as `MicrogptError` with a message that
says what is wrong and what to do. The command-line entry points print that
message on one line and exit 1; anything else is a bug.
"""


class MicrogptError(Exception):
    """A problem with the user's input or environment, with an actionable message."""


class ConfigError(MicrogptError):
    """A scenario config is invalid: the message names the file and the key."""


class DataError(MicrogptError):
    """Training data cannot be found, downloaded or parsed."""


class CheckpointError(MicrogptError):
    """A model.json is missing, unreadable or does not match what is expected."""


class TrainingDiverged(MicrogptError):
    """The loss became NaN or infinite."""
