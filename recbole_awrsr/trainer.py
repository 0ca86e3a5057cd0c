"""Trainers: RecBole's, with checkpoint loading that works on torch >= 2.6, a time budget,
a per-epoch training history and runs that continue where an interrupted process stopped."""

import functools
import os
import random
import time
import uuid
from collections import OrderedDict

import numpy as np
import torch
from recbole.evaluator import Collector
from recbole.trainer import Trainer
from recbole.utils import set_color

from recbole_awrsr.collector import TopkCollector
from recbole_awrsr.compat import load_checkpoint
from recbole_awrsr.errors import CheckpointError
from recbole_awrsr.files import atomic_path
from recbole_awrsr.history import (
    GradientNormMeter,
    TrainingHistory,
    history_path,
    model_label,
)
from recbole_awrsr.model.sharpness import model_sharpness

#: validation sequences the per-epoch sharpness is measured on
SHARPNESS_ROWS = 256

#: what the resumable state of a run is called beside its checkpoint (``M.pth`` -> ``M.last.pth``)
LAST_STATE_SUFFIX = ".last.pth"


def last_state_path(model_file):
    """Where a resumable run keeps its state after the last finished epoch."""
    return os.path.splitext(os.fspath(model_file))[0] + LAST_STATE_SUFFIX


def random_states(loaders):
    """Every random state training draws from: torch's (and CUDA's), numpy's, Python's,
    and the generator of each loader (RecBole shuffles the training data with its own).

    Kept as tensors, lists and numbers, which torch's weights-only loader reads back.
    """
    name, keys, position, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)),
                  "pos": int(position), "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "loaders": [loader.generator.get_state() if getattr(loader, "generator", None) is not None
                    else None for loader in loaders],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states, loaders):
    """Put back what :func:`random_states` took (same loaders, same order)."""
    torch.set_rng_state(states["torch"])
    numpy_state = states["numpy"]
    np.random.set_state((numpy_state["name"], numpy_state["keys"].numpy().astype(np.uint32),
                         numpy_state["pos"], numpy_state["has_gauss"], numpy_state["gauss"]))
    python_state = states["python"]
    random.setstate((python_state["version"], tuple(python_state["internal"]),
                     python_state["gauss_next"]))
    for loader, state in zip(loaders, states["loaders"]):
        if state is not None and getattr(loader, "generator", None) is not None:
            loader.generator.set_state(state)
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def first_sequences(data, field, rows):
    """The first ``rows`` item sequences (rows, n) of an evaluation loader.

    The loader's iteration is run with the random state forked off: starting a
    torch DataLoader draws a seed from the global generator.
    """

    parts, count = [], 0
    with torch.random.fork_rng(devices=[]):
        for batch in data:
            interaction = batch[0] if isinstance(batch, tuple) else batch
            parts.append(interaction[field].cpu())
            count += len(parts[-1])
            if count >= rows:
                break
    return torch.cat(parts)[:rows]


def saved_other_parameters(model):
    """``model.other_parameter()`` without the model's own submodules (None if nothing is left).

    SASRecF and FDSA name their feature embedding layer there, so RecBole pickled the
    whole layer, and with it the dataset the layer keeps a reference to. Its weights are
    in the state dict already, and a model built from the same configuration has the
    same layer, so it need not travel (and a safe loader could not rebuild a dataset).
    """
    other = model.other_parameter()
    if not other:
        return other
    own = {id(module) for module in model.modules()}
    kept = {key: value for key, value in other.items()
            if not (isinstance(value, torch.nn.Module) and id(value) in own)}
    return kept or None


class TimeBudgetExhausted(Exception):
    """Raised between epochs once ``train_time_budget`` seconds of training have passed."""


class PluginTrainerMixin:
    """Applied to every trainer class the plugin hands out (ours and RecBole's).

    * Checkpoint names get a random suffix: RecBole's have one-second resolution.
    * Checkpoints are written in a pickle protocol torch's weights-only loader reads,
      and read back (testing the best epoch, resuming) through
      :func:`recbole_awrsr.compat.load_checkpoint`, which unpickles nothing but what a
      checkpoint holds: RecBole's own reader died on the pickled ``Config`` with
      torch >= 2.6, and a full unpickler would run whatever a crafted file asks.
    * ``train_time_budget`` (seconds, default none): no new epoch starts after it;
      the best checkpoint so far is kept and tested, as after early stopping. It
      lets different models be compared at the same wall-clock.
    * ``save_history`` (default true): after every epoch, the training history
      (training loss, global gradient norm, epoch time, validation metrics) is
      rewritten to ``<checkpoint stem>.history.csv`` in ``checkpoint_dir``, see
      :mod:`recbole_awrsr.history`. The gradient norm is the L2 norm of all
      parameters' gradients together, taken at every optimizer step; the CSV's
      ``grad_norm`` is its **mean over the epoch's steps** (``grad_norm_last``: the
      last step's). Recording only reads gradients and clocks: no metric changes.
      For the plugin's models each validated epoch also gets the last layer's
      attention sharpness on the first :data:`SHARPNESS_ROWS` validation sequences
      (:mod:`recbole_awrsr.model.sharpness`; computed in eval mode with the random
      state forked off, so training draws the same numbers with or without it).
    * ``last_eval_struct``: the data RecBole's evaluator scored in the last
      evaluation (``rec.topk``: each user's hits in the top k and positive count).
    * ``last_valid_result``: the last validation's metrics (what ``callback_fn`` of
      ``fit`` may report; RecBole passes it only the score).
    * ``epochs_trained`` and ``best_epoch`` (the last epoch with the best
      validation score, as RecBole chooses it) are kept on the trainer for whoever reports the run.
    * ``enable_amp``: RecBole runs only the training step under ``torch.autocast``
      (bfloat16 on a CPU); here evaluation's scoring runs under the same autocast too,
      and the scores come back as float32 (RecBole's collector and metrics see the
      dtype they always saw). With the key off nothing is cast.
    * ``resumable`` (attribute, default false; ``quick_start.run(checkpoint_file=...)``
      sets it): before each epoch after the first, the state after the previous epoch
      (weights, optimizer, early-stopping counters, best result, time used and every
      random state, see :func:`random_states`) is written to
      :func:`last_state_path` of the checkpoint; :meth:`resume_last_state` continues
      from it, so that a killed run resumed gives the same numbers as one that never
      stopped. The file goes once ``fit`` ends (early stopping, ``epochs``, time budget).
      ``elapsed_before`` (seconds of ``fit`` in earlier processes) and
      ``resumed_epoch`` (the first epoch this process trained, or None) say how.
    * RecBole's evaluation collector becomes :class:`~recbole_awrsr.collector.TopkCollector`
      (the same ``rec.topk`` without a users x items matrix per batch), where a
      trainer uses RecBole's own.
    """

    def __init__(self, config, model):
        super().__init__(config, model)
        # RecBole names checkpoints by the second, so runs started together (two
        # terminals, parallel trials, a comparison grid) overwrote each other's file
        if getattr(self, "saved_model_file", None):
            stem, ext = os.path.splitext(self.saved_model_file)
            self.saved_model_file = f"{stem}-{uuid.uuid4().hex[:6]}{ext}"
        self.last_eval_struct = None
        self.resumable, self.elapsed_before, self.resumed_epoch = False, 0.0, None
        self._resume = None
        if type(getattr(self, "eval_collector", None)) is Collector:
            self.eval_collector = TopkCollector(config)
        evaluator = getattr(self, "evaluator", None)  # every RecBole trainer has one today
        if evaluator is not None:
            evaluate = evaluator.evaluate

            def keep_struct(struct):
                # RecBole's collector hands its data out once and clears it: the per-user
                # numbers of the last evaluation (compare's paired test) are read from here
                self.last_eval_struct = struct
                return evaluate(struct)

            evaluator.evaluate = keep_struct

    def _history_enabled(self):
        # an unset key means the default: on
        return self.config["save_history"] is not False

    def fit(self, train_data, valid_data=None, *args, **kwargs):
        self._history = None
        self._sharpness_sequences = None
        self._loaders = [train_data, valid_data]
        self._saving = kwargs.get("saved", args[1] if len(args) > 1 else True)
        resume, self._resume = self._resume, None
        if resume is None:
            self.epochs_trained, self.best_epoch, self._best_seen = 0, None, None
        else:
            self.epochs_trained, self.best_epoch = resume["epochs_trained"], resume["best_epoch"]
            self._best_seen = resume["best_seen"]
            restore_random_states(resume["random"], self._loaders)
        self._fit_started = time.monotonic() - self.elapsed_before
        if self._history_enabled():
            self._history = TrainingHistory(history_path(self.saved_model_file),
                                            model_label(self.config))
            self._history.keep_earlier(self.start_epoch)
        try:
            result = super().fit(train_data, valid_data, *args, **kwargs)
        except TimeBudgetExhausted as stop:
            self.logger.info(str(stop))
            result = self.best_valid_score, getattr(self, "best_valid_result", None)
        if self.resumable and os.path.exists(last_state_path(self.saved_model_file)):
            os.remove(last_state_path(self.saved_model_file))
        return result

    def write_last_state(self, epoch):
        """Write the state after ``epoch`` (all of it: trained, validated, early stopping
        counted) where :meth:`resume_last_state` finds it; atomically."""
        path = last_state_path(self.saved_model_file)
        best = getattr(self, "best_valid_result", None)
        state = {
            "config": self.config,
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": self.best_valid_score,
            "best_valid_result": None if best is None else {k: float(v) for k, v in best.items()},
            "best_epoch": self.best_epoch,
            "best_seen": self._best_seen,
            "epochs_trained": self.epochs_trained,
            "elapsed": time.monotonic() - self._fit_started,
            "state_dict": self.model.state_dict(),
            "other_parameter": saved_other_parameters(self.model),
            "optimizer": self.optimizer.state_dict(),
            "random": random_states(self._loaders),
        }
        with atomic_path(path) as temporary:
            torch.save(state, temporary)

    def resume_last_state(self):
        """Continue from the state a resumable run left beside ``saved_model_file``.

        Returns the epoch training goes on from, or None when there is no state (or only
        one whose best checkpoint is gone; then the run starts over, with a warning).
        The next ``fit`` picks up the counters, the time used and the random states.
        """
        path = last_state_path(self.saved_model_file)
        if not os.path.isfile(path):
            return None
        state = load_checkpoint(path, map_location=self.device)
        if state["best_epoch"] is not None and not os.path.isfile(self.saved_model_file):
            self.logger.warning(f"{path}: its best checkpoint {self.saved_model_file} is gone; "
                                f"starting over")
            return None
        if state["config"]["model"].lower() != self.config["model"].lower():
            raise CheckpointError(f"{path} holds a {state['config']['model']} run, the config "
                                  f"names {self.config['model']}: remove the file to start over")
        self.model.load_state_dict(state["state_dict"])
        self.model.load_other_parameter(state.get("other_parameter"))
        self.optimizer.load_state_dict(state["optimizer"])
        self.start_epoch = self.resumed_epoch = state["epoch"] + 1
        self.cur_step = state["cur_step"]
        self.best_valid_score = state["best_valid_score"]
        best = state["best_valid_result"]
        self.best_valid_result = None if best is None else OrderedDict(best)
        self.elapsed_before = float(state["elapsed"])
        self._resume = state
        self.logger.info(f"{path}: resuming training at epoch {self.start_epoch} "
                         f"({self.elapsed_before:.0f}s trained before)")
        return self.start_epoch

    def _train_epoch(self, train_data, epoch_idx, *args, **kwargs):
        budget = self.config["train_time_budget"]
        started = getattr(self, "_fit_started", None)
        if budget is not None and started is not None and epoch_idx > self.start_epoch:
            elapsed = time.monotonic() - started
            if elapsed >= budget:
                raise TimeBudgetExhausted(
                    f"train_time_budget of {budget}s used up after {epoch_idx} epochs "
                    f"({elapsed:.0f}s): stopping, the best epoch so far is kept."
                )
        if self.resumable and getattr(self, "_saving", False) and epoch_idx > self.start_epoch:
            self.write_last_state(epoch_idx - 1)
        self._epoch = epoch_idx
        self.epochs_trained = getattr(self, "epochs_trained", 0) + 1
        history = getattr(self, "_history", None)
        optimizer = getattr(self, "optimizer", None)
        if history is None or optimizer is None:
            return super()._train_epoch(train_data, epoch_idx, *args, **kwargs)
        meter = GradientNormMeter(self.model.parameters())
        handle = meter.attach(optimizer)
        started = time.monotonic()
        try:
            train_loss = super()._train_epoch(train_data, epoch_idx, *args, **kwargs)
        finally:
            handle.remove()
        history.add_epoch(epoch_idx, train_loss, meter, time.monotonic() - started)
        return train_loss

    def _valid_epoch(self, valid_data, *args, **kwargs):
        started = time.monotonic()
        valid_score, valid_result = super()._valid_epoch(valid_data, *args, **kwargs)
        elapsed = time.monotonic() - started
        self.last_valid_result = valid_result
        best = getattr(self, "_best_seen", None)
        if best is None or (valid_score >= best if self.valid_metric_bigger else valid_score <= best):
            self._best_seen, self.best_epoch = valid_score, getattr(self, "_epoch", None)
        history = getattr(self, "_history", None)
        if history is not None:
            history.add_validation(valid_score, valid_result, elapsed,
                                   self.validation_sharpness(valid_data))
        return valid_score, valid_result

    def validation_sharpness(self, valid_data, rows=None):
        """Last-layer attention sharpness on the first validation sequences, or ``{}``.

        Only for models with ``attention_layers()`` and ``encode`` (the plugin's);
        ``rows`` sequences at most (default :data:`SHARPNESS_ROWS`).
        """
        if not (hasattr(self.model, "attention_layers") and hasattr(self.model, "encode")):
            return {}
        rows = rows or SHARPNESS_ROWS
        sequences = getattr(self, "_sharpness_sequences", None)
        if sequences is None or len(sequences) < rows:
            sequences = first_sequences(valid_data, self.model.ITEM_SEQ, rows)
            self._sharpness_sequences = sequences
        return model_sharpness(self.model, sequences[:rows].to(self.device))

    def _scoring(self, batch_eval, batched_data):
        """``batch_eval(batched_data)`` under autocast when ``enable_amp`` is on;
        returns RecBole's (interaction, scores (B, n_items) float32, positive_u, positive_i)."""
        amp = bool(getattr(self, "enable_amp", False))
        with torch.autocast(device_type=self.device.type, enabled=amp):
            interaction, scores, positive_u, positive_i = batch_eval(batched_data)
        return interaction, scores.float(), positive_u, positive_i

    def _full_sort_batch_eval(self, batched_data):
        return self._scoring(super()._full_sort_batch_eval, batched_data)

    def _neg_sample_batch_eval(self, batched_data):
        return self._scoring(super()._neg_sample_batch_eval, batched_data)

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        """RecBole's checkpoint dict, written with torch's default pickle protocol.

        RecBole writes protocol 4, which torch's weights-only loader cannot read; the
        same dict in the default protocol loads through
        :func:`~recbole_awrsr.compat.load_checkpoint` without unpickling code.
        ``other_parameter`` leaves out the model's own submodules
        (:func:`saved_other_parameters`).
        Trainers without an optimizer (decision trees) keep RecBole's own.
        """
        if not isinstance(self, Trainer) or not hasattr(self, "optimizer"):
            return super()._save_checkpoint(epoch, verbose=verbose, **kwargs)
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return None
        path = kwargs.pop("saved_model_file", self.saved_model_file)
        checkpoint = {
            "config": self.config,
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": self.best_valid_score,
            "state_dict": self.model.state_dict(),
            "other_parameter": saved_other_parameters(self.model),
            "optimizer": self.optimizer.state_dict(),
        }
        # atomically: a reader (the best epoch's evaluation, parking a running grid) never
        # sees half a checkpoint
        with atomic_path(path) as temporary:
            torch.save(checkpoint, temporary)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {path}")
        return None

    def load_weights(self, path):
        """Load a checkpoint's model weights into the model (safely); returns the checkpoint."""
        checkpoint = load_checkpoint(path, map_location=self.device)
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        return checkpoint

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        """RecBole's evaluation, metrics as Python floats; the best checkpoint is loaded by
        the safe loader."""
        if load_best_model and eval_data and isinstance(self, Trainer):
            path = model_file or self.saved_model_file
            self.load_weights(path)
            self.logger.info(f"Loading model structure and parameters from {path}")
            load_best_model = False
        result = super().evaluate(eval_data, load_best_model=load_best_model, model_file=model_file,
                                  show_progress=show_progress)
        # RecBole's metrics are numpy floats, which numpy 2 prints as np.float64(0.06) in
        # the log's "best valid" and "test result" lines
        if isinstance(result, dict):
            result = type(result)((key, float(value) if isinstance(value, np.floating) else value)
                                  for key, value in result.items())
        return result

    def resume_checkpoint(self, resume_file):
        """Continue training from a checkpoint (RecBole's, read by the safe loader)."""
        resume_file = str(resume_file)
        self.saved_model_file = resume_file
        checkpoint = self.load_weights(resume_file)
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        if checkpoint["config"]["model"].lower() != self.config["model"].lower():
            self.logger.warning(f"the checkpoint holds a {checkpoint['config']['model']}, the "
                                f"config names {self.config['model']}")
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")


@functools.lru_cache(maxsize=None)
def with_plugin_fixes(trainer_class):
    """``trainer_class`` with :class:`PluginTrainerMixin` in front (same name), cached."""
    if issubclass(trainer_class, PluginTrainerMixin):
        return trainer_class
    return type(trainer_class.__name__, (PluginTrainerMixin, trainer_class), {})


class AWRTrainer(PluginTrainerMixin, Trainer):
    """The trainer of the plugin's models."""
