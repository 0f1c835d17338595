"""The local Lambda runner's execution environments per function: a pool per function ARN
whose key is everything its processes were started with (code, variables, handler, runtime,
timeout, memory, endpoint, generation). An invocation takes the warmest idle environment or
starts a new one (Lambda scales out rather than queueing); up to MAX_IDLE stay warm after it.
Update, delete and a backend reset retire a function's environments (busy ones when their
invocation ends); every one dies with the local cloud (the exit sweep).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from gdlab.local.lambda_environment import INIT_TIMEOUT, Environment, live
from gdlab.local.lambda_environment import lock as _pool_lock

# The runner's logger, as before the split: its records keep their name.
log = logging.getLogger("gdlab.local.lambda_runner")

MAX_IDLE = 4  # warm environments kept per function once a burst is over

_pools: dict[str, _Pool] = {}  # by function ARN
_generations: dict[str, int] = {}  # bumped by update/delete: older environments retire


@dataclass
class _Pool:
    key: tuple[Any, ...]
    idle: list[Environment] = field(default_factory=list)
    busy: set[Environment] = field(default_factory=set)
    starting: int = 0  # pre-warms under way: an invocation waits for one, not spawns

    def retire(self) -> list[Environment]:
        """Idle environments to kill now; busy ones end when their invocation does."""
        for env in self.busy:
            env.retired = True
        doomed, self.idle = self.idle, []
        return doomed


def _key(fn: Any, url: str | None) -> tuple[Any, ...]:
    # Whatever the process was started with; the endpoint is baked into its environment.
    code = hashlib.sha256(fn.code_bytes or b"").hexdigest()
    variables = json.dumps(fn.environment_vars or {}, sort_keys=True, default=str)
    return (fn.function_arn, _generations.get(fn.function_arn, 0), code, variables,
            fn.handler, str(fn.run_time), fn.timeout, fn.memory_size, url)


def _kill_all(envs: list[Environment]) -> None:
    for env in envs:
        env.kill()


def _acquire(fn: Any, url: str | None) -> Environment:
    """A warm idle environment for fn's current configuration, reaching the local cloud at
    url, or a new one (scale out)."""
    key = _key(fn, url)
    doomed: list[Environment] = []
    try:
        with _pool_lock:
            pool = _pools.get(fn.function_arn)
            if pool is None or pool.key != key:
                if pool is not None:
                    doomed += pool.retire()
                pool = _pools[fn.function_arn] = _Pool(key)
            while True:
                while pool.idle:
                    env = pool.idle.pop()  # the most recently used is the warmest
                    if env.alive():
                        pool.busy.add(env)
                        return env
                    doomed.append(env)
                if not pool.starting or _pools.get(fn.function_arn) is not pool:
                    break
                _pool_lock.wait(INIT_TIMEOUT)
        env = Environment(fn, key, url)
        with _pool_lock:
            if _pools.get(fn.function_arn) is pool:
                pool.busy.add(env)
            else:
                env.retired = True  # the function changed meanwhile: run once, then go
        return env
    finally:
        _kill_all(doomed)


def _release(env: Environment) -> None:
    with _pool_lock:
        pool = _pools.get(env.arn)
        if pool is not None:
            pool.busy.discard(env)
        keep = (pool is not None and pool.key == env.key and not env.retired
                and env.alive() and len(pool.idle) < MAX_IDLE)
        if keep:
            pool.idle.append(env)  # type: ignore[union-attr]
    if not keep:
        env.kill()


def prewarm(fn: Any, url: str | None) -> None:
    """Start fn's environment, reaching the local cloud at url, in the background, so the
    first event finds it initialised. Only once the endpoint is known: an environment cannot
    learn it later."""
    if url is None or not str(fn.run_time or "").startswith("python"):
        return
    key = _key(fn, url)
    doomed: list[Environment] = []
    with _pool_lock:
        pool = _pools.get(fn.function_arn)
        if pool is not None and pool.key == key and (pool.idle or pool.busy or pool.starting):
            return
        if pool is not None:
            doomed = pool.retire()
        pool = _pools[fn.function_arn] = _Pool(key)
        # Counted before the thread runs, so an invocation right behind waits for this one.
        pool.starting += 1
    _kill_all(doomed)

    def start() -> None:
        env = None
        try:
            env = Environment(fn, key, url)
        except Exception:
            log.exception("could not start an environment for %s", fn.function_name)
        with _pool_lock:
            pool.starting -= 1
            keep = env is not None and _pools.get(fn.function_arn) is pool
            if keep:
                pool.idle.append(env)  # type: ignore[arg-type]
            _pool_lock.notify_all()
        if env is not None and not keep:
            env.kill()

    threading.Thread(target=start, name=f"gdlab-lambda-prewarm-{fn.function_name}",
                     daemon=True).start()


def retire(function_arn: str) -> None:
    """The function was updated or deleted: its environments go (busy ones when done)."""
    with _pool_lock:
        _generations[function_arn] = _generations.get(function_arn, 0) + 1
        pool = _pools.pop(function_arn, None)
        doomed = pool.retire() if pool is not None else []
    _kill_all(doomed)


def environments(function_arn: str | None = None) -> list[Environment]:
    """The live environments (idle and busy), for one function or all."""
    with _pool_lock:
        return [e for e in live if function_arn in (None, e.arn)]


def shutdown() -> None:
    """Kill every environment: the local cloud is going away."""
    with _pool_lock:
        doomed = list(live)
        for pool in _pools.values():
            pool.retire()
        _pools.clear()
    _kill_all(doomed)


atexit.register(shutdown)
