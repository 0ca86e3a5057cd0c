"""Errors the plugin raises for configuration mistakes, before any training starts."""


class ConfigurationError(ValueError):
    """A config key, model name or dataset that cannot work; the message says the fix."""


class MissingDatasetError(ConfigurationError, FileNotFoundError):
    """A dataset's atomic files are missing; the message names the converter command."""


def is_number(value, kind=int):
    """Whether a config value is a ``kind`` (int unless told); YAML's true/false are not.

    ``bool`` is a subclass of ``int`` in Python, so a plain isinstance check would take
    ``true`` for 1.
    """
    return isinstance(value, kind) and not isinstance(value, bool)
