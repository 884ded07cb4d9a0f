"""The HTTP gateway: people reach the platform over HTTP; it forwards to NATS as `portal`."""
