"""Evaluation: accuracy with and without faults and generator, energy, plots and reports."""
