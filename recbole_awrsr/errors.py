"""Errors the plugin raises for configuration mistakes, before any training starts."""


class ConfigurationError(ValueError):
    """A config key, model name or dataset that cannot work; the message says the fix."""


class MissingDatasetError(ConfigurationError, FileNotFoundError):
    """A dataset's atomic files are missing; the message names the converter command."""
