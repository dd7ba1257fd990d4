"""Pipelines: frozen parts composed into generation (encode -> denoise -> decode)."""
