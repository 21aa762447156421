"""Aggregation algorithms: consensus rankings, rating aggregation, model leaderboards (pure)."""
