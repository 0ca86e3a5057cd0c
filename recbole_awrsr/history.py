"""The training history: one row per epoch, kept as a CSV beside the checkpoint.

The trainer (:class:`recbole_awrsr.trainer.PluginTrainerMixin`) records, for every
epoch, the training loss, the global gradient norm, the epoch's training and
validation time and the validation metrics, and rewrites
``<checkpoint stem>.history.csv`` in ``checkpoint_dir`` after each epoch (atomically),
so a run that is stopped or still going has an up-to-date file.

Columns: ``epoch``, ``model`` (e.g. ``SASRecAWR simple``), ``train_loss`` (RecBole's
sum of the batch losses, as it logs it), ``train_loss_mean`` (that sum over the
number of optimizer steps), ``steps``, ``grad_norm`` (mean over the epoch's steps of
the global gradient norm), ``grad_norm_last`` (the last step's), ``train_time_s``,
``valid_time_s``, ``valid_score`` and one column per validation metric
(``ndcg@5``, ...); validation columns are empty for epochs without validation.
For the plugin's models, ``refined_entropy``, ``refined_recent``, ``first_entropy``
and ``first_recent``: the last layer's attention sharpness on the first validation
sequences (:mod:`recbole_awrsr.model.sharpness`).
"""

import math
import os

import pandas as pd
import torch

from recbole_awrsr.files import write_csv

HISTORY_SUFFIX = ".history.csv"


def history_path(model_file):
    """The history CSV of a checkpoint: ``saved/M-date.pth`` -> ``saved/M-date.history.csv``."""
    return os.path.splitext(os.fspath(model_file))[0] + HISTORY_SUFFIX


def global_gradient_norm(parameters):
    """L2 norm of all gradients together, sqrt(sum_p ||grad_p||^2), as a float.

    Parameters without a gradient (unused in the step) count as zero.
    """
    norms = [torch.linalg.vector_norm(p.grad.detach(), dtype=torch.float64)
             for p in parameters if p.grad is not None]
    if not norms:
        return 0.0
    return torch.linalg.vector_norm(torch.stack(norms)).item()


class GradientNormMeter:
    """Measures the global gradient norm at every optimizer step of an epoch.

    Attached as an optimizer step pre-hook, it sees exactly the gradients the
    optimizer applies (after RecBole's optional ``clip_grad_norm`` clipping and AMP
    unscaling), reads them without changing them, and draws no random numbers:
    training is unchanged.
    """

    def __init__(self, parameters):
        self.parameters = list(parameters)
        self.norms = []

    def attach(self, optimizer):
        """Start measuring at each ``optimizer.step()``; returns the handle to ``remove()``."""
        return optimizer.register_step_pre_hook(self._on_step)

    def _on_step(self, optimizer, args, kwargs):
        self.norms.append(global_gradient_norm(self.parameters))

    @property
    def steps(self):
        return len(self.norms)

    @property
    def mean(self):
        """Mean of the per-step norms (NaN if no step ran)."""
        return sum(self.norms) / len(self.norms) if self.norms else math.nan

    @property
    def last(self):
        """The last step's norm (NaN if no step ran)."""
        return self.norms[-1] if self.norms else math.nan


def model_label(config):
    """A short name for a run: the model, and its refinement mechanism if it has one."""
    mechanism = config["refine_mechanism"]
    return f"{config['model']} {mechanism}" if mechanism else str(config["model"])


class TrainingHistory:
    """Rows of per-epoch records, written to one CSV file after every change."""

    def __init__(self, path, label):
        self.path = path
        self.label = label
        self.rows = []

    def keep_earlier(self, start_epoch):
        """On resuming at ``start_epoch``: keep the file's rows of the epochs before it."""
        if start_epoch > 0 and os.path.exists(self.path):
            earlier = read_history(self.path)
            self.rows = earlier[earlier["epoch"] < start_epoch].to_dict("records")

    def add_epoch(self, epoch, train_loss, meter, train_time):
        """Record a finished training epoch (``train_loss``: a float or a tuple of parts)."""
        total = sum(train_loss) if isinstance(train_loss, tuple) else train_loss
        total = math.nan if total is None else float(total)
        self.rows.append({
            "epoch": epoch,
            "model": self.label,
            "train_loss": total,
            "train_loss_mean": total / meter.steps if meter.steps else math.nan,
            "steps": meter.steps,
            "grad_norm": meter.mean,
            "grad_norm_last": meter.last,
            "train_time_s": train_time,
        })
        self.write()

    def add_validation(self, valid_score, valid_result, valid_time, sharpness=None):
        """Attach the validation of the epoch just trained (and its sharpness) to its row."""
        if not self.rows:
            return
        row = self.rows[-1]
        row["valid_time_s"] = valid_time
        row["valid_score"] = float(valid_score)
        for name, value in (valid_result or {}).items():
            row[name] = float(value)
        for name, value in (sharpness or {}).items():
            row[name] = float(value)
        self.write()

    def write(self):
        write_csv(pd.DataFrame(self.rows), self.path)


def read_history(path):
    """A history CSV as a DataFrame (one row per epoch)."""
    return pd.read_csv(path)
