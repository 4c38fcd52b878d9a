"""TFRS models, reference models and peers."""
