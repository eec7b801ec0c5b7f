"""One module per ``rnn`` command group, each exposing ``register(subparsers)``."""
