"""torch.distributed for compress_to_size: sums and min/max over ranks, and re-wrapping in DDP.

Every decision of the loop is made from numbers reduced here or from weights DDP keeps identical,
so that all ranks choose the same masks; without torch.distributed it is a single process.
"""
from __future__ import annotations

import torch
from torch import nn


class Ranks:
    """torch.distributed when it is in use; a single process otherwise."""

    def __init__(self, ddp: nn.Module | None):
        import torch.distributed as dist

        self.dist = dist
        self.on = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        self.rank = dist.get_rank() if self.on else 0
        self.ddp_args = {}
        if ddp is not None:
            self.ddp_args = {"device_ids": ddp.device_ids, "output_device": ddp.output_device,
                             "process_group": ddp.process_group}

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, values: list[float]) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64)
        if self.on:
            self.dist.all_reduce(t)
        return t.tolist()

    def sync_ranges(self, model) -> None:
        """Every rank calibrated on its own shard: take the min/max over all ranks."""
        if not self.on:
            return
        for q in model.act_quants().values():
            self.dist.all_reduce(q.lo, op=self.dist.ReduceOp.MIN)
            self.dist.all_reduce(q.hi, op=self.dist.ReduceOp.MAX)

    def wrap(self, model: nn.Module) -> nn.Module:
        if not self.on:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, **self.ddp_args)
