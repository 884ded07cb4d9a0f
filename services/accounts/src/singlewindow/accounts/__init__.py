"""Owns enterprises, accounts, credentials, sessions, business scope and permissions."""
