"""Query and candidate towers."""
