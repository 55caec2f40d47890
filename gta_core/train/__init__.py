"""Training: `python -m gta_core train`, one process or under torchrun.

    python -m gta_core train --model demo_r2d18_gta --data DATA --out checkpoints/NAME \
        [--config train.json] [--epochs 30] [--optimizer adamw|sgd] [--schedule cosine|step] ...
    torchrun --nproc_per_node 2 -m gta_core train ...        (DDP: gloo on CPU, NCCL on GPU)

The steps, as timm's train.py and PySlowFast's train_net.py lay them out:
build.py    `build_data` (datasets, sampler, loader), `build_model`, `build_augment`,
            `resume`, all in `build_run`
optim.py    `make_optimizer`, `make_scheduler` (torch's LambdaLR), the resume state
loop.py     `train_one_epoch`, `end_epoch` (validation, metrics line, checkpoint,
            resume state), `finish`, and `train`, which runs them
config.py   `TrainConfig`; cli.py the command line

* Data: an SSv2-layout folder (`gta_core.data.ssv2.SSv2Dataset`). Training clips
  take a random frame in each TSN segment; validation clips the centre one.
  `--cache-frames` decodes every video of a split once (`gta_core.data.cache`).
  One DistributedSampler serves one process and many: each rank a different
  shard, reshuffled per epoch from (seed, epoch); with one process it is a
  seeded permutation of the whole set.
* Optimiser: SGD (momentum, nesterov off) or AdamW; torch's LambdaLR applies
  `lr_factor`, a linear warm-up over `--warmup-epochs`, then cosine to zero or
  steps (×`--gamma` at each of `--milestones`, in epochs). The factor is a pure
  function of the step, so a resumed run rebuilds the scheduler at its step
  and follows the same schedule.
* Mixed precision (float16 autocast + GradScaler) on CUDA when `--amp auto|on`.
* Under torchrun: DistributedDataParallel and rank 0 alone writes files.
  BatchNorm statistics are per rank, rank 0's buffers broadcast each step
  (DDP's default); `--sync-bn` converts to SyncBatchNorm.
* Files, written after every epoch by rank 0 into OUT:
    config.json + model.safetensors    the checkpoint (our format), last epoch
    metrics.jsonl                      one JSON line per epoch
    resume/optimizer.safetensors,      optimiser state and the loop position
    resume/state.json                  (no pickle), deleted when the run ends
  OUT must not hold a checkpoint already unless `--resume` or `--force` is given.
  `--resume` continues from OUT/resume after an interruption; on a finished
  run (no OUT/resume) it says so and trains nothing. Randomness is re-seeded
  from (seed, epoch, rank) at every epoch, so a resumed run sees the same
  clips, crops and dropout masks as one that was not interrupted.
* At the end the final model is evaluated on the validation split with the
  real video path (`gta_core.evaluate.evaluate_model`, what `evaluate` runs)
  and the metrics, the dataset's seed and generator command, the exact command
  line, git commit, device and wall time go into config.json.
"""
from ..data.cache import CACHE_DIR, CachedClips, build_frame_cache
from .build import SetupError, check_setup, load_backbone
from .cli import build_config, cmd_train, register
from .config import METRICS_FILE, NO_FLIP_WORDS, RESUME_DIR, TrainConfig, flip_allowed
from .loop import train, train_one_epoch
from .optim import load_resume_state, lr_factor, make_optimizer, make_scheduler, save_resume_state

__all__ = [
    "CACHE_DIR", "METRICS_FILE", "NO_FLIP_WORDS", "RESUME_DIR", "CachedClips", "SetupError", "TrainConfig",
    "build_config", "build_frame_cache", "check_setup", "cmd_train", "flip_allowed", "load_backbone",
    "load_resume_state", "lr_factor", "make_optimizer", "make_scheduler", "register", "save_resume_state", "train",
    "train_one_epoch",
]
