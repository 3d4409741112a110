"""A local Glider v2 API simulator: the embedded Glider of ``dev``, ``demo`` and the tests.

``config`` (what it serves), ``state`` (pure rules, injectable clock), ``operations``
(operation timelines), ``chaos`` (faults and journal), ``render`` (JSON shapes),
``app`` (aiohttp routes) and ``server`` (running it; the ``sim`` command).
"""

from relay.sim.app import SIM, SimContext, create_app
from relay.sim.clock import FakeClock
from relay.sim.config import SimApiKey, SimConfig, SimPortfolio
from relay.sim.server import SimServer, serve, start_sim
from relay.sim.state import SimState

__all__ = [
    "SIM",
    "FakeClock",
    "SimApiKey",
    "SimConfig",
    "SimContext",
    "SimPortfolio",
    "SimServer",
    "SimState",
    "create_app",
    "serve",
    "start_sim",
]
