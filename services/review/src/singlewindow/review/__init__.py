"""Owns back-office review tasks, reviewers' decisions and the SLA clock."""
