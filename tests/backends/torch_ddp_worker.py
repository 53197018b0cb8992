"""One rank of the 2-process torchrun jobs of test_torch_distributed.py.

    torchrun --nproc-per-node 2 tests/backends/torch_ddp_worker.py losses STEPS BATCH ACCUM
        rank 0 prints {"losses": [...], "weights": {...}} of a names run as JSON
    torchrun --nproc-per-node 2 tests/backends/torch_ddp_worker.py cli [--die-at K] [--signal-at K] [--skew-seed]
            -- TRAIN_ARGS
        `python -m microgpt.train TRAIN_ARGS` on every rank; --die-at K: rank 1 exits in step K;
        --signal-at K: rank 1 alone gets SIGTERM as step K ends (between two steps, the racy moment);
        --skew-seed: rank 1 trains another seed (a rank started with another config)
"""

from __future__ import annotations

import json
import os
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)


def losses(steps: int, batch: int, accum: int) -> int:
    from microgpt.backends.torch_backend import TorchBackend
    from microgpt.config import load_scenario
    from microgpt.experiment import prepare

    cfg = load_scenario("names").replace("training", batch_size=batch, grad_accum=accum)
    exp = prepare(cfg, quiet=True)
    be = TorchBackend(exp.cfg, exp.tokenizer.vocab_size, exp.weights, exp.train_tokens, threads=1)
    out = be.train_steps(0, steps)
    if be.writes_checkpoints:
        print(json.dumps({"losses": out, "weights": be.get_weights(), "world": be.dist.world}))
    return 0


def cli(args: list[str]) -> int:
    from microgpt import train
    from microgpt.backends.torch_backend import TorchBackend

    rank = int(os.environ["RANK"])
    split = args.index("--")
    own, train_args = args[:split], args[split + 1:]
    if "--die-at" in own and rank == 1:
        die_at = int(own[own.index("--die-at") + 1])
        real_step = TorchBackend.step

        def step(self, docs, lr, s):
            if s + 1 == die_at:
                os._exit(3)  # as a crashed rank would: no cleanup, no message
            return real_step(self, docs, lr, s)

        TorchBackend.step = step
    if "--signal-at" in own and rank == 1:
        signal_at = int(own[own.index("--signal-at") + 1])
        real_step = TorchBackend.step

        def step(self, docs, lr, s):
            loss = real_step(self, docs, lr, s)
            if s + 1 == signal_at:
                os.kill(os.getpid(), signal.SIGTERM)
            return loss

        TorchBackend.step = step
    if "--skew-seed" in own and rank == 1:
        train_args += ["--seed", "7"]
    return train.run_main(train.main, train_args)


if __name__ == "__main__":
    mode, rest = sys.argv[1], sys.argv[2:]
    sys.exit(losses(*map(int, rest)) if mode == "losses" else cli(rest))
