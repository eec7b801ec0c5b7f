"""Remote Network Node: a terminal-first decentralized P2P compute network."""

__version__ = "0.1.0"
