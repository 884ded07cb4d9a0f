"""The platform's contracts: per owning service, its subjects, request and event models."""
