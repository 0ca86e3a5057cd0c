"""Data: atomic-file converters and the plugin's RecBole dataset classes."""
