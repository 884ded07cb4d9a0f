"""Owns PC/SC readers and E-Port cards: card operations over NATS, insert/remove events."""
