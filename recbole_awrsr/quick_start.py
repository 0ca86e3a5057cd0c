"""The one door: train and evaluate any model (ours or RecBole's) under the plugin's config."""

import logging
from logging import getLogger

from recbole.data import data_preparation
from recbole.utils import init_logger, init_seed

from recbole_awrsr.compat import disable_anomaly_detection, load_checkpoint
from recbole_awrsr.config import Config
from recbole_awrsr.registry import create_dataset, get_model, get_trainer


def log_file_path():
    """The file RecBole's logger writes to in this process, if any."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            return handler.baseFilename
    return None


def run(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True):
    """Train, validate and test one model; returns ``(result, trainer)``.

    ``result`` is RecBole's ``run_recbole`` dict; the trainer says where the
    checkpoint went (``trainer.saved_model_file``).
    """
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list,
                    config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(config)

    data = create_dataset(config)
    logger.info(data)
    train_data, valid_data, test_data = data_preparation(config, data)

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model_class = get_model(config["model"])
    net = model_class(config, train_data.dataset).to(config["device"])
    logger.info(net)
    disable_anomaly_detection()

    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"]
    )
    test_result = trainer.evaluate(
        test_data, load_best_model=saved, show_progress=config["show_progress"]
    )
    logger.info(f"best valid : {best_valid_result}")
    logger.info(f"test result: {test_result}")
    result = {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
    }
    return result, trainer


def run_recbole_awrsr(model=None, dataset=None, config_file_list=None, config_dict=None,
                      saved=True):
    """Like RecBole's ``run_recbole``, with the plugin's models, config and fixes.

    Returns ``{"best_valid_score", "valid_score_bigger", "best_valid_result", "test_result"}``.
    """
    result, _ = run(model, dataset, config_file_list, config_dict, saved)
    return result


def load_data_and_model(model_file):
    """Rebuild config, datasets and the trained model from a checkpoint file.

    Returns ``(config, model, dataset, train_data, valid_data, test_data)`` like RecBole's.
    """
    checkpoint = load_checkpoint(model_file)
    config = checkpoint["config"]
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(config)

    data = create_dataset(config)
    logger.info(data)
    train_data, valid_data, test_data = data_preparation(config, data)

    init_seed(config["seed"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data.dataset).to(config["device"])
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return config, model, data, train_data, valid_data, test_data
