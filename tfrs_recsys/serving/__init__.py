"""Recommendations, serving indexes and SavedModel exports."""
