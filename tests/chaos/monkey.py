"""A chaos monkey for the relay's worker processes."""

from __future__ import annotations

import asyncio
import random

from tests.chaos.checks import FAST_RECOVERY
from tests.fixtures.chaos import RelayProcess, RelayProcesses


class Monkey:
    """SIGKILLs a random started worker 1-2.5 s after the last replacement started, and
    starts the next replacement at once (as a supervisor would)."""

    def __init__(
        self,
        procs: RelayProcesses,
        workers: dict[str, RelayProcess],
        flags: tuple[str, ...] = FAST_RECOVERY,
    ) -> None:
        self.procs = procs
        self.flags = flags
        self.workers = workers
        self.kills = 0
        self.rng = random.Random(7)
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        generation = 0
        while not self.stopping.is_set():
            try:
                # The chaos schedule: a random pause, cut short when the run is over.
                await asyncio.wait_for(self.stopping.wait(), timeout=self.rng.uniform(1.0, 2.5))
            except TimeoutError:
                generation += 1
                await self._kill_one(generation)

    async def _kill_one(self, generation: int) -> None:
        # Only workers that got as far as reading: killing one still importing tests nothing
        # but Python's start-up, and on a loaded machine made every entry's next holder die
        # too, until entries were dead-lettered as if they crashed workers themselves.
        started = sorted(name for name, w in self.workers.items() if w.logged("worker started"))
        if not started:
            return
        name = self.rng.choice(started)
        await self.workers.pop(name).kill()
        self.kills += 1
        # Half come back under the same stable name (a supervisor restart), half anew.
        new_name = name if self.rng.random() < 0.5 else f"{name.split('.')[0]}.{generation}"
        self.workers[new_name] = await self.procs.worker(new_name, *self.flags, ready=True)
