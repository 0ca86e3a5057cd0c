"""Bad input a hostile-but-fair user tries: each fails before any data is read, in one line."""

from pathlib import Path

import pytest

from recbole_awrsr import Config
from recbole_awrsr.cli import main as cli_main
from recbole_awrsr.errors import ConfigurationError, is_dataset_name


@pytest.mark.parametrize("name", ["..", ".", "../../../../trav", "/etc/passwd", "a/b", "a b", "", "x\\y"])
def test_dataset_names_that_are_paths_are_refused(name):
    assert not is_dataset_name(name)
    with pytest.raises(ConfigurationError, match="is not a name"):
        Config("SASRecAWR", name)


@pytest.mark.parametrize("name", ["ml-100k", "ml-1m", "beauty", "Beauty_5.v2", "anime"])
def test_ordinary_dataset_names_pass(name):
    assert is_dataset_name(name)


def test_run_with_a_path_as_dataset_exits_2_without_writing_outside(capsys, tmp_path):
    assert cli_main(["--dataset=../../../../trav", "--epochs=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: dataset name '../../../../trav' is not a name") and "\n" not in err
    assert not list(Path(tmp_path).parent.glob("trav*"))


def test_convert_refuses_a_name_that_is_a_path(tmp_path, capsys):
    source = tmp_path / "pairs.txt"
    source.write_text("".join(f"{u} {i}\n" for u in range(1, 7) for i in range(1, 7)))
    out = tmp_path / "out"
    assert cli_main(["data", "convert", "pairs", str(source), "--output-dir", str(out),
                     "--name", ".."]) == 2
    assert "--name '..' is not a dataset name" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.inter"))


@pytest.mark.parametrize("model, key, value, message", [
    ("SASRecAWR", "learning_rate", "abc", "learning_rate must be a number above 0, got 'abc'"),
    ("SASRecAWR", "learning_rate", 0, "learning_rate must be a number above 0"),
    ("SASRecAWR", "MAX_ITEM_LIST_LENGTH", 0, "MAX_ITEM_LIST_LENGTH must be a whole number of at least 1"),
    ("SASRecAWR", "n_heads", 3, "hidden_size (64) must be a multiple of n_heads (3)"),
    ("STOSAAWR", "n_heads", 5, "hidden_size (64) must be a multiple of n_heads (5)"),
    ("SASRecAWR", "topk", [0], "topk must be a positive integer"),  # RecBole's own check
    ("SASRecAWR", "train_batch_size", 0, "train_batch_size must be a whole number of at least 1"),
    ("SASRecAWR", "epochs", -1, "epochs must be a whole number of at least 1, got -1"),
    ("GRU4Rec", "epochs", 2.5, "epochs must be a whole number"),
])
def test_configuration_mistakes_fail_in_config(model, key, value, message):
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Config(model, "ml-100k", config_dict={key: value})


def test_a_mistake_on_the_command_line_is_one_line_before_any_data(capsys):
    assert cli_main(["--learning_rate=abc"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "learning_rate must be a number above 0" in err


@pytest.mark.parametrize("content, message", [
    (None, "No such file or directory"),
    ("", "expected 'key: value' lines, got an empty file"),
    ("learning_rate: [0.1\nepochs: 2\n", "not valid YAML"),
    ("- 1\n- 2\n", "expected 'key: value' lines, got list"),
])
def test_bad_config_files_are_named(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigurationError) as caught:
        Config("SASRecAWR", "ml-100k", config_file_list=[str(path)])
    assert str(path) in str(caught.value) and message in str(caught.value)


def test_misspelt_keys_warn_with_the_closest_known_key(caplog):
    with caplog.at_level("WARNING", logger="recbole_awrsr"):
        Config("SASRecAWR", "ml-100k", config_dict={"learing_rate": 0.5, "refine_mechanizm": "value"})
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "unknown config key 'learing_rate' (no model or setting reads it); did you mean 'learning_rate'?",
        "unknown config key 'refine_mechanizm' (no model or setting reads it); did you mean "
        "'refine_mechanism'?"]


@pytest.mark.parametrize("model", ["SASRecAWR", "STOSAAWR", "BERT4RecAWR", "GRU4Rec"])
def test_known_keys_do_not_warn(caplog, tiny_config_dict, model):
    keys = {**tiny_config_dict, "train_time_budget": 10, "length_groups": 2, "nproc": 1,
            "refine_init": "identity", "pvn_weight": 0.01, "enable_amp": False}
    with caplog.at_level("WARNING", logger="recbole_awrsr"):
        Config(model, "tiny", config_dict={k: v for k, v in keys.items()
                                           if model != "GRU4Rec" or not k.startswith("refine")})
    assert not caplog.records


@pytest.mark.parametrize("content, reason", [
    (b"", "torch cannot read it"),
    (b"just some text\n", "torch cannot read it"),
    ("state_dict", "a state dict without the config"),
    ("truncated", "torch cannot read it"),
])
def test_files_that_are_not_checkpoints_are_named_in_one_line(tmp_path, capsys, content, reason):
    import torch

    path = tmp_path / "model.pth"
    if content == "state_dict":
        torch.save({"weight": torch.zeros(2)}, path)
    elif content == "truncated":
        torch.save({"config": {}, "state_dict": {"w": torch.zeros(1000)}}, path)
        path.write_bytes(path.read_bytes()[:300])
    else:
        path.write_bytes(content)
    for argv in (["analysis", "topn", "--model-file", str(path), "--out", "out"],
                 ["recommend", str(path), "--user", "1"]):
        assert cli_main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is not a recbole-awrsr/RecBole checkpoint" in err
        assert reason in err and str(path) in err


class RunsACommand:
    """Unpickling this runs ``touch <marker>``: what a crafted checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_checkpoint_runs_no_code(tmp_path, capsys):
    """A checkpoint whose config unpickles to os.system(...) is refused and runs nothing,
    through every door that reads checkpoints."""
    import torch

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"config": RunsACommand(marker), "state_dict": {}}, path)
    for argv in (["analysis", "attention", "--model-file", str(path), "--out", "out"],
                 ["recommend", str(path), "--user", "1"]):
        assert cli_main(argv) == 2
        err = capsys.readouterr().err
        assert "holds 'posix.system'" in err or "holds 'os.system'" in err
        assert "--trust-checkpoint" in err and err.count("\n") == 1
    assert not marker.exists()


def test_checkpoints_of_the_plugins_trainer_load_safely_and_recboles_need_trust(
        tiny_config_dict, tmp_path):
    """What the trainer writes loads with the weights-only loader; a file in RecBole's own
    format (pickle protocol 4) is refused unless trusted, and then loads with a warning."""
    import torch

    from recbole_awrsr.compat import load_checkpoint
    from recbole_awrsr.errors import CheckpointError
    from recbole_awrsr.quick_start import load_data_and_model, run

    result, built = run("SASRecAWR", "tiny", config_dict=tiny_config_dict)
    path = built.trainer.saved_model_file
    config, model, *_ = load_data_and_model(path)  # safe: no trust needed
    assert config["model"] == "SASRecAWR"
    recbole_style = tmp_path / "recbole.pth"
    torch.save(load_checkpoint(path), recbole_style, pickle_protocol=4)
    with pytest.raises(CheckpointError, match="pickle protocol the safe loader cannot read"):
        load_checkpoint(recbole_style)
    with pytest.warns(UserWarning, match="unpickling .* fully"):
        trusted = load_checkpoint(recbole_style, trusted=True)
    for key, value in load_checkpoint(path)["state_dict"].items():
        assert torch.equal(trusted["state_dict"][key], value)


def test_a_clean_run_prints_none_of_recboles_internal_warnings(tiny_config_dict, tmp_path):
    """With every warning shown (-W default), RecBole's GradScaler deprecation and pandas'
    chained-assignment notice stay hidden; a warning of ours still shows."""
    import subprocess
    import sys

    code = (
        "import warnings, recbole_awrsr\n"
        "from recbole_awrsr.quick_start import run\n"
        f"run('SASRecAWR', 'tiny', config_dict={dict(tiny_config_dict, epochs=1)!r}, saved=False)\n"
        "warnings.warn('ours', UserWarning)\n"
    )
    done = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True,
                          text=True, cwd=tmp_path, timeout=300, env={**__import__("os").environ,
                                                                      "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "GradScaler" not in done.stderr and "chained assignment" not in done.stderr
    assert "UserWarning: ours" in done.stderr
