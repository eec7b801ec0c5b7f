"""``python -m rnn_tui`` is ``rnn``."""

from rnn_tui.cli import main

raise SystemExit(main())
