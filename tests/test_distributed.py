"""Multi-process training through RecBole's distributed path, on CPU with gloo."""

import socket

import pytest
import torch

from recbole_awrsr.cli import parse_distributed_args, run_main
from recbole_awrsr.config import Config


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_distributed_options_are_taken_out_of_argv():
    options, rest = parse_distributed_args(
        ["--model=SASRecAWR", "--nproc", "2", "--port=1234", "--ip=10.0.0.1", "--epochs=3"]
    )
    assert options == {"nproc": 2, "port": 1234, "ip": "10.0.0.1"}
    assert rest == ["--model=SASRecAWR", "--epochs=3"]
    assert parse_distributed_args(["--epochs=3"]) == ({}, ["--epochs=3"])


def test_single_process_config_keeps_recboles_device(tiny_config_dict):
    config = Config("SASRecAWR", "tiny", config_dict=tiny_config_dict)
    assert config["single_spec"] is True
    assert config["local_rank"] == 0
    assert not torch.distributed.is_initialized()


def test_two_cpu_processes_train_and_report_metrics(tiny_config_dict, tmp_path, capsys):
    """Two gloo processes train SASRecAWR on the tiny dataset; rank 0 returns the metrics."""
    argv = ["--model=SASRecAWR", "--dataset=tiny", "--nproc=2", f"--port={free_port()}",
            "--ip=127.0.0.1", "--gpu_id=''"]
    argv += [f"--{key}={value}" for key, value in tiny_config_dict.items()]
    result = run_main(argv)
    assert result is not None
    test_result = result["test_result"]
    assert set(test_result) >= {"recall@1", "recall@5", "ndcg@5"}
    assert all(0.0 <= value <= 1.0 for value in test_result.values())
    assert result["best_valid_score"] == pytest.approx(result["best_valid_result"]["ndcg@5"])
    # rank 0 wrote the one checkpoint both ranks tested
    assert len(list((tmp_path / "saved").glob("SASRecAWR-*.pth"))) == 1
    assert "Test results: SASRecAWR on tiny" in capsys.readouterr().out
