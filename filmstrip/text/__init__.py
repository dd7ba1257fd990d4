"""Text conditioning: the frozen MiniLM encoder and its prompt cache."""
