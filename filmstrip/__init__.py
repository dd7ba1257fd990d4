"""filmstrip: a compact, complete, trainable video-generation stack."""

__version__ = "0.1.0"
