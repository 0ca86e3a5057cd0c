"""Data at run time: the plugin's RecBole dataset classes (converters: :mod:`recbole_awrsr.datatools`)."""
