"""In-graph feature preprocessing: lookups, normalisation, text encoders."""
