"""Evaluation: reconstruction metrics, temporal flicker and, later, prompt adherence."""
