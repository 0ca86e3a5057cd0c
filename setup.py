"""Packages: every ``recbole_awrsr`` package found in the tree, plus the top-level
``properties/`` folder shipped as ``recbole_awrsr.properties`` (mapped in setup.cfg).
Everything else is in setup.cfg."""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["recbole_awrsr", "recbole_awrsr.*"]) + ["recbole_awrsr.properties"])
