"""The analyses' forward passes shared by the processes torchrun starts (issue 29), timed on rank 0,
with a MemoryStore (the GPU image has no DuckDB):

    torchrun --standalone --nproc_per_node N bench/sharded_forward.py CHECKPOINT

Prints images/s of the test and training passes together, gathered on rank 0."""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from core.analysis.engine import Analyzer  # noqa: E402
from core.analysis.features import analysis_device  # noqa: E402
from core.checkpoints import load  # noqa: E402
from core.distributed import Distributed  # noqa: E402
from core.store import MemoryStore  # noqa: E402


def main() -> None:
    distributed = Distributed()
    device = distributed.setup(analysis_device())
    try:
        engine = Analyzer(load(sys.argv[1]), MemoryStore(), feature_dir=None, device=device, distributed=distributed)
        started = time.perf_counter()
        main_rank = engine.share_forward_passes()
        seconds = time.perf_counter() - started
        if main_rank:
            images = len(engine.features("test", None).labels) + len(engine.features("train", None).labels)
            print(f"{distributed.world_size} process(es) on {device.type}: {images} images in {seconds:.1f} s, "
                  f"{images / seconds:.0f} images/s (decode + forward + gather)")
        distributed.finish()
    finally:
        distributed.teardown()


if __name__ == "__main__":
    main()
