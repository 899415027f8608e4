"""Running steps durably (DESIGN §3.2-3.5, §3.9, §6, §7, §15).

What a worker calls is exported here: ``process`` (one message), ``run_inline`` (immediate mode),
``Outcome``, and the worker-identity and shutdown switches. The rooms behind it:

- ``steps``: one step's state machine (claim, run, persist) and the chaining loop;
- ``claim``: the immutable plan of a claimed step and why it stopped (``StepPlan``, ``StopReason``);
- ``watch``: the watcher that renews the lease and turns cancel, deadline and shutdown into a stop;
- ``finish``: ending an execution, the DLQ entry, backoff and the one retry rule (§3.5);
- ``outbox``: every write of a queue row and the one after-commit sending path (§3.3);
- ``locks``: per-asset locks, fencing tokens and the FIFO wait-list (§3.9);
- ``gates``: level-3 step gates; ``secrets``: just-in-time secret resolution (§3.8);
- ``recovery``, ``sweeper``: what is done about work nobody is doing; ``workers``: the workers table.
"""

from core.engine.steps import (
    Outcome,
    process,
    request_shutdown,
    reset_shutdown,
    run_inline,
    worker_identity,
)

__all__ = ["Outcome", "process", "request_shutdown", "reset_shutdown", "run_inline", "worker_identity"]
