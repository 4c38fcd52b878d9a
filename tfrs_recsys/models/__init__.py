"""The TFRS models (two-tower retrieval, pointwise ranking), their factory and what they hand the exporter."""
