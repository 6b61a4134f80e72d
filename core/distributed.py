"""Several processes under `torchrun`: who this one is, and what they share."""
from __future__ import annotations

import datetime
import os

import torch


class Distributed:
    """torchrun support: DistributedDataParallel with NCCL on GPU, gloo on the CPU (training);
    a split's forward pass cut into contiguous shards, gathered on rank 0 (analysis)."""

    def __init__(self):
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.active = self.world_size > 1
        self.host_group = None  # the gloo group host tensors are gathered through (None: the default group)

    def setup(self, device: torch.device, patience: datetime.timedelta | None = None) -> torch.device:
        """Join the group; `patience`: how long a rank may wait on the others (the analysis's ranks
        wait while rank 0 analyses, which may take hours on a CPU; torch's default is minutes)."""
        if not self.active:
            return device
        import torch.distributed as dist
        if device.type == "cuda":
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=patience)
        # host tensors (an analysis's features) travel through gloo: a group of its own beside NCCL
        self.host_group = dist.new_group(backend="gloo", timeout=patience) if device.type == "cuda" else None
        return device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model, uses_gate: bool, device: torch.device):
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=uses_gate)

    def shard(self, indices: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return indices
        usable = len(indices) - len(indices) % self.world_size
        return indices[self.rank:usable:self.world_size]

    def contiguous(self, count: int) -> torch.Tensor:
        """This rank's positions of `count` items: one contiguous block of each rank's share, so
        that rank 0 puts the blocks back in order."""
        return torch.arange(count).tensor_split(self.world_size)[self.rank] if self.active else torch.arange(count)

    def gather_rows(self, tensors: list[torch.Tensor], count: int) -> list[torch.Tensor] | None:
        """On rank 0, each tensor's rows from every rank's `contiguous` block, in order (the
        blocks are padded to one size for the gather); None on the other ranks."""
        if not self.active:
            return tensors
        import torch.distributed as dist
        sizes = [len(block) for block in torch.arange(count).tensor_split(self.world_size)]
        gathered = []
        for tensor in tensors:
            padded = torch.zeros((max(sizes), *tensor.shape[1:]), dtype=tensor.dtype)
            padded[:len(tensor)] = tensor
            parts = [torch.empty_like(padded) for _ in sizes] if self.is_main else None
            dist.gather(padded, parts, dst=0, group=self.host_group)
            if self.is_main:
                gathered.append(torch.cat([part[:size] for part, size in zip(parts, sizes)]))
        return gathered if self.is_main else None

    def rank0_says(self, value):
        """Rank 0's `value` on every rank (a decision all must take alike, such as whether a
        forward pass is needed, which only rank 0's cache can answer)."""
        if not self.active:
            return value
        import torch.distributed as dist
        box = [value]
        dist.broadcast_object_list(box, src=0, group=self.host_group)
        return box[0]

    def all_mean(self, value: float, device) -> float:
        if not self.active:
            return value
        import torch.distributed as dist
        tensor = torch.tensor([value], device=device, dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor) / self.world_size

    def finish(self):
        """At the end of a run that went well: wait for every rank (rank 0 may still be writing
        the checkpoint), so that all destroy the group together, as torch.distributed asks. A
        rank that destroyed its group while another was still busy was aborted by gloo
        ("terminate called without an active exception"), seen once in a fresh `make test`."""
        if self.active:
            import torch.distributed as dist
            dist.barrier()

    def teardown(self):
        if self.active:
            import torch.distributed as dist
            if dist.is_initialized():
                dist.destroy_process_group()
