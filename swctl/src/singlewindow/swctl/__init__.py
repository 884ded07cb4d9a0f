"""swctl: the Single Window command-line client, and the embedded platform runner."""
