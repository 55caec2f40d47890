"""How fast do GTA's global matrices M̂ move in training? (issue 15)

    python bench/probe_matrices.py DATA [--steps 300] [--matrix-lr-mult 1] [--matrix-weight-decay 0]
           [--epochs 15] [--reverse-aug 0.5] [--seed 0]

Runs the demo recipe (demo_r2d18_gta, AdamW 2e-3, batch 8, 112², cosine over
--epochs) for --steps optimiser steps on the cached frames of DATA, one thread,
and prints every --every steps, for the M̂ tensors against all other weights:
‖M̂ − M̂₀‖/‖M̂₀‖, the largest |corr(M̂, M̂₀)| over the M̂ tensors, the relative gradient ‖∇‖/‖θ‖ and the relative Adam update
‖Δθ‖/‖θ‖ of that step. Numbers only; nothing is written.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from gta_core.data.ssv2 import SSv2Dataset
from gta_core.evaluate import reversed_targets
from gta_core.matrices import MATRIX_NAMES, correlation
from gta_core.models import create_model, model_config
from gta_core.train import CACHE_DIR, CachedClips, TrainConfig, build_frame_cache, make_optimizer, make_scheduler
from gta_core.video import ClipSpec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--matrix-lr-mult", type=float, default=1.0)
    ap.add_argument("--matrix-weight-decay", type=float, default=0.0)
    ap.add_argument("--reverse-aug", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = TrainConfig(data=args.data, lr=2e-3, batch_size=8, warmup_epochs=0.5, epochs=args.epochs,
                      matrix_lr_mult=args.matrix_lr_mult, matrix_weight_decay=args.matrix_weight_decay,
                      seed=args.seed)
    data = Path(args.data)
    arch = model_config(cfg.model)
    spec = ClipSpec(arch.num_frames, cfg.input_size, cfg.resize_shorter, cfg.mean, cfg.std)
    source = SSv2Dataset(data, "train", spec, train=True, seed=cfg.seed)
    clips = CachedClips(source, build_frame_cache(source, cfg.resize_shorter, cfg.cache_max_frames, data / CACHE_DIR),
                        arch.num_frames, cfg.input_size, train=True, seed=cfg.seed)
    loader = DataLoader(clips, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(cfg.seed))
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, num_classes=len(source.class_names))
    optimizer = make_optimizer(cfg, model)
    scheduler = make_scheduler(cfg, optimizer, len(loader))
    table = reversed_targets(data, source.class_names, np.arange(len(source.class_names)))
    table = torch.as_tensor(table) if table is not None and args.reverse_aug > 0 else None
    params = dict(model.named_parameters())
    is_matrix = {n: n.rsplit(".", 1)[-1] in MATRIX_NAMES for n in params}
    start = {n: p.detach().clone() for n, p in params.items() if is_matrix[n]}

    def norm(tensors) -> float:
        return float(torch.sqrt(sum((t.float() ** 2).sum() for t in tensors)))

    step = 0
    print("step  lr      loss   |M-M0|/|M0|  corr(M,M0)  grad/param M | others   update/param M | others")
    while step < args.steps:
        for x, y in loader:
            if table is not None:
                back = torch.rand(len(y)) < args.reverse_aug
                x = torch.where(back[:, None, None, None, None], x.flip(dims=(2,)), x)
                y = torch.where(back, table[y], y)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            before = {n: p.detach().clone() for n, p in params.items()}
            optimizer.step()
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            step += 1
            if step % args.every == 0 or step == 1:
                ratios = {}
                for kind, names in (("M", [n for n in params if is_matrix[n]]),
                                    ("W", [n for n in params if not is_matrix[n] and params[n].ndim > 1])):
                    size = norm([before[n] for n in names])
                    ratios[kind] = (norm([params[n].grad for n in names]) / size,
                                    norm([params[n].detach() - before[n] for n in names]) / size)
                change = norm([params[n].detach() - start[n] for n in start]) / norm(start.values())
                corr = max(abs(correlation(params[n].detach(), start[n])) for n in start)
                print(f"{step:4d}  {lr:.1e}  {loss.item():.3f}  {change:10.3f}  {corr:9.3f}  "
                      f"{ratios['M'][0]:.2e} | {ratios['W'][0]:.2e}   {ratios['M'][1]:.2e} | {ratios['W'][1]:.2e}",
                      flush=True)
            if step >= args.steps:
                break


if __name__ == "__main__":
    main()
