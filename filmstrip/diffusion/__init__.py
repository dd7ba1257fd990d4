"""Objectives and samplers: rectified flow, timestep shift, solvers, guidance."""
