"""RecBole dataset classes the plugin adds, and the rule that picks one for a config."""


def dataset_class(config):
    """The plugin dataset class for ``config``, or None to use RecBole's own choice."""
    return None
