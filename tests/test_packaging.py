"""Packaging: the YAML files ship inside the wheel, so a non-editable install finds them."""

import shutil
import subprocess
import sys
import zipfile

from conftest import REPO_ROOT


def test_wheel_carries_every_properties_yaml(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.py", "setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    for folder in ("recbole_awrsr", "properties"):
        shutil.copytree(REPO_ROOT / folder, source / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("recbole_awrsr-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"recbole_awrsr/properties/{path.relative_to(REPO_ROOT / 'properties').as_posix()}"
                for path in (REPO_ROOT / "properties").rglob("*.yaml")}
    assert "recbole_awrsr/properties/overall.yaml" in expected
    assert expected <= names, expected - names
    # every module of the source tree is in the wheel (a package left out of setup.cfg is not)
    modules = {path.relative_to(REPO_ROOT).as_posix()
               for path in (REPO_ROOT / "recbole_awrsr").rglob("*.py")}
    assert "recbole_awrsr/model/sasrec_awr.py" in modules
    assert modules <= names, modules - names
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "recbole-awrsr = recbole_awrsr.cli:main" in entry_points


def test_installed_package_finds_its_properties():
    from recbole_awrsr.config import properties_dir

    root = properties_dir()
    assert (root / "overall.yaml").is_file()
    assert (root / "model" / "SASRecAWR.yaml").is_file()
