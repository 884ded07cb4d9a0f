"""The service runtime: bus, outbox and inbox, database, passwords, observability, clock."""
