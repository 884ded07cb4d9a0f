"""Owns registration applications (card and cardless) and their onboarding decisions."""
