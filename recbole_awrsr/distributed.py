"""Training with several processes: joining the process group, the CPU wrapper, one checkpoint.

RecBole 1.2.1 always joins a distributed run with NCCL on CUDA devices; here a run
on CPU uses gloo, and the model is wrapped without device ids. The launcher that
starts the processes is :func:`recbole_awrsr.quick_start.run_distributed`.
"""

import os

import torch
import torch.distributed as dist

from recbole_awrsr.errors import ConfigurationError


def init_distributed(final):
    """Join the process group a distributed run describes, on the device it can use.

    ``final`` is the config dict holding RecBole's distributed keys (``local_rank``,
    ``offset``, ``world_size``, ``ip``, ``port``, ``nproc``, ``gpu_id``). With CUDA
    available and GPUs listed in ``gpu_id``, each process takes GPU ``local_rank`` and
    NCCL (RecBole's behaviour); otherwise every process runs on the CPU with gloo.
    ``dist_backend`` overrides the backend.
    """
    gpu_id = final["gpu_id"]
    gpu_id = ",".join(map(str, gpu_id)) if isinstance(gpu_id, (tuple, list)) else str(gpu_id)
    final["gpu_id"] = gpu_id
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu_id
    gpus = [g for g in gpu_id.split(",") if g.strip()]
    on_gpu = bool(gpus) and final.get("use_gpu", True) and torch.cuda.is_available()
    local_rank = final["local_rank"]
    if on_gpu and len(gpus) < final["nproc"]:
        raise ConfigurationError(
            f"nproc={final['nproc']} processes need as many GPUs, but gpu_id lists "
            f"{len(gpus)} ('{gpu_id}'): set gpu_id='0,1,...' or lower nproc."
        )
    backend = final.get("dist_backend") or ("nccl" if on_gpu else "gloo")
    if not dist.is_initialized():
        dist.init_process_group(
            backend=backend,
            rank=local_rank + final.get("offset", 0),
            world_size=final["world_size"],
            init_method=f"tcp://{final['ip']}:{final['port']}",
        )
    if on_gpu:
        torch.cuda.set_device(local_rank)
        final["device"] = torch.device("cuda", local_rank)
    else:
        final["device"] = torch.device("cpu")
    final["dist_backend"] = backend
    final["single_spec"] = False
    if local_rank != 0:
        # only the first process logs and shows progress, as in RecBole
        final["state"] = "error"
        final["show_progress"] = False
        final["verbose"] = False


def construct_trainer(trainer_class, config, net):
    """``trainer_class(config, net)``, also for a distributed run on CPU.

    RecBole's trainer wraps the model in ``DistributedDataParallel`` with
    ``device_ids=[local_rank]``, which torch refuses for a CPU model; on CPU the
    wrapper is built here without device ids instead.
    """
    if config["single_spec"] or config["device"].type != "cpu":
        return trainer_class(config, net)
    config["single_spec"] = True  # RecBole's constructor skips its GPU-only wrapper
    try:
        trainer = trainer_class(config, net)
    finally:
        config["single_spec"] = False
    trainer.distributed_model = torch.nn.parallel.DistributedDataParallel(trainer.model)
    return trainer


def share_checkpoint_name(trainer):
    """Make every process test the checkpoint the first process wrote.

    Each process names its checkpoint after its own clock (one-second resolution),
    but only the first one writes it; the barrier also keeps the others from reading
    it before it is complete.
    """
    name = [trainer.saved_model_file]
    dist.broadcast_object_list(name, src=0)
    trainer.saved_model_file = name[0]
    dist.barrier()
