"""The run: `train_one_epoch`, `end_epoch`, `finish`, and `train`, which runs them."""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import CheckpointConfig, save_checkpoint
from ..distributed import all_gather_objects, barrier, init_distributed, shutdown
from ..evaluate import evaluate_model, summary_line
from .build import Run, build_run, check_setup, finished_run
from .config import METRICS_FILE, RESUME_DIR, TrainConfig
from .optim import save_resume_state


# ---------------------------------------------------------------- one epoch


@dataclass
class EpochStats:
    loss_sum: float = 0.0
    correct: float = 0.0
    seen: float = 0.0
    steps: int = 0
    lr: float = 0.0                 # the first group's lr at the epoch's last step
    stopped: bool = False           # --max-steps reached
    started: float = field(default_factory=time.time)


def _seed_epoch(cfg: TrainConfig, epoch: int, rank: int) -> None:
    torch.manual_seed(int(np.random.SeedSequence([cfg.seed, epoch, rank]).generate_state(1)[0]))


def train_one_epoch(run: Run, epoch: int) -> EpochStats:
    cfg, env = run.cfg, run.env
    stats = EpochStats()
    _seed_epoch(cfg, epoch, env.rank)
    run.data.sampler.set_epoch(epoch)
    run.data.train_set.set_epoch(epoch)
    run.model.train()
    batches, bar = run.data.loader, None
    if env.is_main and cfg.progress:
        from tqdm import tqdm

        batches = bar = tqdm(run.data.loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                             mininterval=1 if sys.stderr.isatty() else 30)
    use_amp = run.scaler.is_enabled()
    for clips, labels in batches:
        clips, labels = clips.to(env.device, non_blocking=True), labels.to(env.device, non_blocking=True)
        clips, labels = run.augment(clips, labels)
        with torch.autocast(env.device.type, dtype=torch.float16, enabled=use_amp):
            logits = run.model(clips)
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=cfg.label_smoothing)
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        if cfg.grad_clip > 0:
            run.scaler.unscale_(run.optimizer)
            nn.utils.clip_grad_norm_(run.raw.parameters(), cfg.grad_clip)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        stats.lr = run.optimizer.param_groups[0]["lr"]
        run.scheduler.step()
        run.step += 1
        stats.steps += 1
        stats.loss_sum += loss.item() * len(labels)
        stats.correct += (logits.argmax(1) == labels).sum().item()
        stats.seen += len(labels)
        if bar is not None:
            bar.set_postfix(loss=f"{stats.loss_sum / stats.seen:.3f}", acc=f"{stats.correct / stats.seen:.3f}")
        if cfg.max_steps and run.step >= cfg.max_steps:
            stats.stopped = True
            break
    if bar is not None:
        bar.close()
    run.train_seconds += time.time() - stats.started
    return stats


# ---------------------------------------------------------------- after an epoch, at the end


def checkpoint_config(run: Run, metrics: dict, extra: dict) -> CheckpointConfig:
    cfg = run.cfg
    return CheckpointConfig(
        architecture=run.raw.config.to_dict(), class_names=list(run.data.class_names), model_name=cfg.model,
        input_size=cfg.input_size, resize_shorter=cfg.resize_shorter,
        mean=list(cfg.mean), std=list(cfg.std), sampling="tsn", dataset=run.record["dataset"],
        provenance={k: v for k, v in run.record.items() if k != "dataset"} | extra, metrics=metrics,
    )


def end_epoch(run: Run, epoch: int, stats: EpochStats, val_metrics: dict) -> dict:
    """Validate when due, write the metrics line, the checkpoint and the resume state; returns val_metrics."""
    cfg, env, out = run.cfg, run.env, Path(run.cfg.out)
    totals = np.array(all_gather_objects(env, (stats.loss_sum, stats.correct, stats.seen)), dtype=np.float64).sum(axis=0)
    line = {
        "epoch": epoch + 1, "step": run.step, "lr": stats.lr,
        "train_loss": totals[0] / max(1, totals[2]), "train_top1": totals[1] / max(1, totals[2]),
        "train_clips": int(totals[2]), "epoch_seconds": round(time.time() - stats.started, 2),
    }
    if epoch == cfg.epochs - 1 or stats.stopped or (epoch + 1) % cfg.eval_every == 0:
        val_metrics = evaluate_model(run.raw, run.data.val_set, run.data.class_names, Path(cfg.data), env,
                                     batch_size=cfg.eval_batch_size)
        line |= {f"val_{k}": val_metrics[k] for k in ("top1", "top5", "loss", "reversed_top1") if k in val_metrics}
    if cfg.log_sample_ids:  # the video ids of the clips this rank trained on, in order
        order = list(iter(run.data.sampler))[: stats.steps * cfg.batch_size]
        line["sample_ids_by_rank"] = all_gather_objects(env, [run.data.train_set.samples[i][2] for i in order])
    if env.is_main:
        out.mkdir(parents=True, exist_ok=True)
        with (out / METRICS_FILE).open("a") as handle:
            handle.write(json.dumps(line) + "\n")
        save_checkpoint(out, run.raw, checkpoint_config(
            run, {}, {"epochs_done": epoch + 1, "train_seconds": round(run.train_seconds, 1)}))
        save_resume_state(out / RESUME_DIR, run.optimizer, run.scaler, {
            "epoch": epoch, "step": run.step, "train_seconds": run.train_seconds,
            "model": cfg.model, "world_size": env.world_size,
        })
        print(_epoch_message(line, cfg.epochs), file=sys.stderr, flush=True)
    barrier(env)
    return val_metrics


def _epoch_message(line: dict, epochs: int) -> str:
    msg = f"epoch {line['epoch']}/{epochs}: train loss {line['train_loss']:.4f} top-1 {line['train_top1']:.3f}"
    if "val_top1" in line:
        msg += f" | val top-1 {line['val_top1']:.3f}"
        if "val_reversed_top1" in line:
            msg += f" reversed {line['val_reversed_top1']:.3f}"
    return msg + f" | {line['epoch_seconds']} s"


def finish(run: Run, val_metrics: dict, epochs_done: int, stopped: bool, started: float) -> dict:
    """The final numbers through the real video path, the final checkpoint; the resume state goes."""
    cfg, env, out = run.cfg, run.env, Path(run.cfg.out)
    # Without the cache the last epoch's validation already went the real video way.
    if cfg.cache_frames or not val_metrics:
        val_metrics = evaluate_model(run.raw, run.data.val_source, run.data.class_names, Path(cfg.data), env,
                                     batch_size=cfg.eval_batch_size)
    final = {
        "val_top1": val_metrics.get("top1"), "val_top5": val_metrics.get("top5"),
        "val_loss": val_metrics.get("loss"), "val_reversed_top1": val_metrics.get("reversed_top1"),
        "val_both_directions_top1": val_metrics.get("both_directions_top1"),
        "val_per_class_accuracy": val_metrics.get("per_class_accuracy"),
        "num_val_clips": val_metrics.get("num_clips"),
    }
    if env.is_main:
        save_checkpoint(out, run.raw, checkpoint_config(run, final, {
            "epochs_done": epochs_done, "steps": run.step, "train_seconds": round(run.train_seconds, 1),
            "wall_seconds": round(time.time() - started, 1), "stopped_at_max_steps": stopped,
        }))
        if not stopped:  # the run is complete; one cut short by --max-steps can go on with --resume
            resume_dir = out / RESUME_DIR
            for name in ("optimizer.safetensors", "state.json"):
                (resume_dir / name).unlink(missing_ok=True)
            if resume_dir.is_dir() and not any(resume_dir.iterdir()):
                resume_dir.rmdir()
        print(f"done: {summary_line(val_metrics)}; {out}", file=sys.stderr)
    barrier(env)
    return final


# ---------------------------------------------------------------- the run


def train(cfg: TrainConfig, argv: list[str] | None = None) -> dict:
    """Run training as `cfg` says; returns the final metrics (on every rank)."""
    check_setup(cfg)
    finished = finished_run(cfg)
    if finished is not None:
        return finished
    env = init_distributed(cfg.device, cfg.threads)
    started = time.time()
    try:
        run = build_run(cfg, env, argv)
        val_metrics: dict = {}
        epochs_done, stopped = run.start_epoch, False
        for epoch in range(run.start_epoch, cfg.epochs):
            stats = train_one_epoch(run, epoch)
            val_metrics = end_epoch(run, epoch, stats, val_metrics)
            epochs_done, stopped = epoch + 1, stats.stopped
            if stopped:
                break
        return finish(run, val_metrics, epochs_done, stopped, started)
    finally:
        shutdown(env)
