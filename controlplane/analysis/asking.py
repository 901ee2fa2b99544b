"""What asking a version needs, without speaking HTTP: where it answers (:class:`Target`),
what came back (:class:`Reply`), and a pool that asks many items at once through any
client with an ``ask`` method (:func:`ask_all`). The HTTP client itself is
:mod:`controlplane.analysis.prompting`, given to the services by whoever builds them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Protocol

from controlplane.evalsuite import EvalItem


@dataclass(frozen=True)
class Target:
    """One version as a server answers it: its addresses (a Service, or the pods that hold
    an adapter) and the model name to ask for (None: the server's own, from /v1/models)."""

    urls: tuple[str, ...]
    model: str | None = None


@dataclass(frozen=True)
class Reply:
    text: str
    error: str | None
    seconds: float
    prompt_tokens: int
    completion_tokens: int
    attempts: int


class Asks(Protocol):
    """Sends one item to one version and says what came back (never raises for a failed
    request: that is a reply with an error)."""

    def ask(self, item: EvalItem) -> Reply: ...

    def close(self) -> None: ...


def ask_all(
    asker: Asks,
    items: Sequence[EvalItem],
    *,
    concurrency: int,
    on_reply: Callable[[EvalItem, Reply], None],
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """Ask every item, ``concurrency`` at a time, calling ``on_reply`` (from this thread,
    in completion order) as each comes back; stops sending when ``stop()`` says so.
    Returns how many were answered or failed."""
    done = 0
    pending: set[Future[Reply]] = set()
    owner: dict[Future[Reply], EvalItem] = {}
    queue: Iterable[EvalItem] = iter(items)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="eval") as pool:
        exhausted = False
        while True:
            while not exhausted and len(pending) < concurrency and not stop():
                item = next(queue, None)  # type: ignore[call-overload]
                if item is None:
                    exhausted = True
                    break
                future = pool.submit(asker.ask, item)
                pending.add(future)
                owner[future] = item
            if not pending:
                return done
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                on_reply(owner.pop(future), future.result())
                done += 1
            if stop():
                exhausted = True
