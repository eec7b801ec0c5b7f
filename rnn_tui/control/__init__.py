"""Local control API: a Unix socket in the data dir (mode 0600), never TCP."""
