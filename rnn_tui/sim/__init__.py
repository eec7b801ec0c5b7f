"""In-process network and virtual clock for deterministic simulations of sans-IO cores."""

from rnn_tui.sim.network import Addr, SimNetwork, VirtualClock

__all__ = ["Addr", "SimNetwork", "VirtualClock"]
