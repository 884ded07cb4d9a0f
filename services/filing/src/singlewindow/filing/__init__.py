"""Owns customs enterprise filing: applications, filed records and customs codes."""
