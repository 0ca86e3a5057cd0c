"""The one error the analysis commands raise for a mistake in the command."""


class AnalysisError(ValueError):
    """An unknown user, layer, head, file or metric; the message says what exists instead.

    The command line prints it as one line on stderr and exits with status 1.
    """
