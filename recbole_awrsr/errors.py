"""The plugin's errors: every mistake a user can make and fix is an :class:`AWRSRError`.

The command line (:func:`recbole_awrsr.cli.main`) prints such an error as one line,
``error: <message>``, and exits with status 2; anything else is a bug and keeps its
traceback.
"""

import re


class AWRSRError(Exception):
    """A mistake in a command, config, dataset or input file; the message says the fix."""


class ConfigurationError(AWRSRError, ValueError):
    """A config key, model name or dataset that cannot work, found before any training starts."""


class MissingDatasetError(ConfigurationError, FileNotFoundError):
    """A dataset's atomic files are missing; the message names the converter command."""


class ParamsFileError(ConfigurationError):
    """A params-file line that cannot be read; the message names the file and line."""


class SearchError(AWRSRError):
    """A hyperparameter search that ran but has nothing to report: every trial failed, or
    the search was interrupted before every trial ended."""


class ConversionError(AWRSRError):
    """A raw dataset file that cannot be converted, described in one line.

    ``source`` names the file (or ``archive.zip:member``), ``line`` the 1-based
    line number when one applies, and ``expected`` the format the converter wanted.
    """

    def __init__(self, source, problem, expected=None, line=None):
        self.source, self.problem, self.expected, self.line = str(source), problem, expected, line
        where = self.source if line is None else f"{self.source}, line {line}"
        message = f"{where}: {problem}"
        if expected:
            message += f"; expected {expected}"
        super().__init__(message)


class DownloadError(AWRSRError):
    """A download that could not be done; the message says what to do by hand."""


class AnalysisError(AWRSRError, ValueError):
    """An unknown user, layer, head, file or metric in an analysis command; the message says
    what exists instead."""


#: what a dataset name may be: it becomes a folder and file names under data_path and log/
DATASET_NAME_RULE = "letters, digits, '.', '_' and '-' only, and not '.' or '..'"


def is_dataset_name(name):
    """Whether ``name`` is safe as a dataset name (see :data:`DATASET_NAME_RULE`): no path."""
    return (isinstance(name, str) and name not in (".", "..")
            and re.fullmatch(r"[A-Za-z0-9._-]+", name) is not None)


class CheckpointError(AWRSRError, ValueError):
    """A checkpoint file that is missing or is not a recbole-awrsr/RecBole checkpoint."""


class RecommendError(AWRSRError, ValueError):
    """An unknown user or item id, a missing or unreadable checkpoint, or options that
    do not go together; the message names the bad value."""


def is_number(value, kind=int):
    """Whether a config value is a ``kind`` (int unless told); YAML's true/false are not.

    ``bool`` is a subclass of ``int`` in Python, so a plain isinstance check would take
    ``true`` for 1.
    """
    return isinstance(value, kind) and not isinstance(value, bool)
