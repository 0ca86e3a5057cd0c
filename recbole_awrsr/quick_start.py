"""The one door: train and evaluate any model (ours or RecBole's) under the plugin's config."""

import logging
import os
from dataclasses import dataclass
from logging import getLogger

import torch.distributed as dist
import torch.multiprocessing as mp
from recbole.data import data_preparation
from recbole.utils import init_logger, init_seed

from recbole_awrsr.allocator import keep_freed_memory
from recbole_awrsr.compat import load_checkpoint
from recbole_awrsr.config import Config
from recbole_awrsr.distributed import construct_trainer, share_checkpoint_name
from recbole_awrsr.errors import ConfigurationError
from recbole_awrsr.registry import create_dataset, get_model, get_trainer


def log_file_path():
    """The file RecBole's logger writes to in this process, if any."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            return handler.baseFilename
    return None


def prepare_data(config):
    """Seed, start RecBole's logger and build the data for ``config``.

    Returns ``(dataset, train_data, valid_data, test_data)``.
    """
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(config)
    data = create_dataset(config)
    logger.info(data)
    return (data, *data_preparation(config, data))


@dataclass
class Built:
    """Everything one run needs, built the one way every caller builds it."""
    config: object
    dataset: object
    train_data: object
    valid_data: object
    test_data: object
    model: object
    trainer: object = None


def build(config, trainer=True):
    """Data, model and (with ``trainer``) trainer for ``config``: the one pipeline.

    Config -> seed -> logger -> dataset -> loaders -> seed again -> model -> trainer,
    as RecBole's ``run_recbole`` does it, so that a seed gives RecBole's weights.
    ``reuse_freed_memory`` (default true) first makes malloc keep freed memory
    (:mod:`recbole_awrsr.allocator`).
    Run, checkpoint loading, tuning trials, the cost analysis, the tests and the
    benchmarks all build through here.
    """
    if config["reuse_freed_memory"] is not False:  # unset means the default: on
        keep_freed_memory()
    data, train_data, valid_data, test_data = prepare_data(config)
    net = new_model(config, train_data.dataset)
    getLogger().info(net)
    built = Built(config, data, train_data, valid_data, test_data, net)
    if trainer:
        built.trainer = build_trainer(config, net)
    return built


def new_model(config, dataset):
    """The model ``config`` names, on its device, seeded as RecBole seeds it before building.

    Several models built this way on one dataset get the same initial draws (a
    comparison of weights, the benchmarks).
    """
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    return get_model(config["model"])(config, dataset).to(config["device"])


def run(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True,
        checkpoint_file=None):
    """Train, validate and test one model; returns ``(result, built)``.

    ``result`` is RecBole's ``run_recbole`` dict; ``built`` (:class:`Built`) holds the
    data, the model (with the best weights after testing a saved run) and the
    trainer, which says where the checkpoint went (``trainer.saved_model_file``).
    ``checkpoint_file`` fixes that path and makes the run resumable: its state after
    every epoch is kept beside it, and a run started again with the same file
    continues from there (see :class:`recbole_awrsr.trainer.PluginTrainerMixin`).
    """
    if checkpoint_file is not None and "local_rank" in (config_dict or {}):
        raise ConfigurationError("checkpoint_file (a resumable run) is for one process; "
                                 "a distributed run keeps RecBole's checkpoints")
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list,
                    config_dict=config_dict)
    built = build(config)
    trainer, config = built.trainer, built.config
    if checkpoint_file is not None:
        os.makedirs(os.path.dirname(os.path.abspath(checkpoint_file)), exist_ok=True)
        trainer.saved_model_file = os.fspath(checkpoint_file)
        trainer.resumable = True
        trainer.resume_last_state()
    best_valid_score, best_valid_result = trainer.fit(
        built.train_data, built.valid_data, saved=saved, show_progress=config["show_progress"]
    )
    if not config["single_spec"]:
        share_checkpoint_name(trainer)
    test_result = trainer.evaluate(
        built.test_data, load_best_model=saved, show_progress=config["show_progress"]
    )
    logger = getLogger()
    logger.info(f"best valid : {best_valid_result}")
    logger.info(f"test result: {test_result}")
    result = {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
    }
    return result, built


def build_trainer(config, net):
    """The trainer for ``net``: the plugin's trainer classes, also in a distributed run on CPU."""
    return construct_trainer(get_trainer(config["MODEL_TYPE"], config["model"]), config, net)


def run_recbole_awrsr(model=None, dataset=None, config_file_list=None, config_dict=None,
                      saved=True):
    """Like RecBole's ``run_recbole``, with the plugin's models, config and fixes.

    Returns ``{"best_valid_score", "valid_score_bigger", "best_valid_result", "test_result"}``.
    """
    result, _ = run(model, dataset, config_file_list, config_dict, saved)
    return result


def run_distributed(model=None, dataset=None, config_file_list=None, config_dict=None,
                    saved=True, nproc=1, world_size=-1, ip="localhost", port=5678,
                    group_offset=0):
    """Train with ``nproc`` processes on this machine (one rank each), as RecBole's ``run``.

    ``world_size`` counts the processes of all machines (default ``nproc``); each
    machine starts its own ``nproc`` with ``group_offset`` = the rank of its first
    process and the same ``ip``/``port`` (those of the machine with rank 0). On GPUs
    the backend is NCCL, one GPU per process; on CPU it is gloo (see
    :func:`recbole_awrsr.distributed.init_distributed`). With one process and no world
    size this is :func:`run_recbole_awrsr`. Returns the first process's result dict
    (``None`` on machines that do not hold rank 0).
    """
    if nproc == 1 and world_size <= 0:
        return run_recbole_awrsr(model, dataset, config_file_list, config_dict, saved)


    # Checked once here, so that a configuration mistake fails before any process starts.
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list,
                    config_dict=dict(config_dict or {}))
    # RecBole makes these folders with check-then-create, which races between processes.
    os.makedirs(os.path.join("log", str(config["model"])), exist_ok=True)
    os.makedirs(config["checkpoint_dir"], exist_ok=True)
    distributed = {
        "world_size": nproc if world_size == -1 else world_size,
        "ip": ip,
        "port": int(port),
        "nproc": nproc,
        "offset": group_offset,
    }
    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    mp.spawn(
        _distributed_worker,
        args=(model, dataset, config_file_list, {**(config_dict or {}), **distributed}, saved, queue),
        nprocs=nproc,
        join=True,
    )
    return None if queue.empty() else queue.get()


def _distributed_worker(local_rank, model, dataset, config_file_list, config_dict, saved, queue):
    """One process of :func:`run_distributed`; rank 0 puts the result in ``queue``."""
    result, _ = run(model, dataset, config_file_list, {**config_dict, "local_rank": local_rank}, saved)
    if dist.is_initialized():
        dist.destroy_process_group()
    if local_rank == 0:
        queue.put(result)


def load_data_and_model(model_file, trusted=False):
    """Rebuild config, datasets and the trained model from a checkpoint file.

    Returns ``(config, model, dataset, train_data, valid_data, test_data)`` like RecBole's.
    """
    checkpoint = load_checkpoint(model_file, trusted=trusted)
    built = build(checkpoint["config"], trainer=False)
    built.model.load_state_dict(checkpoint["state_dict"])
    built.model.load_other_parameter(checkpoint.get("other_parameter"))
    return (built.config, built.model, built.dataset, built.train_data, built.valid_data,
            built.test_data)
