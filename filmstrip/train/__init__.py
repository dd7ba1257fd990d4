"""Training: one loop (trainer.py), the EMA, and a task per model family."""
