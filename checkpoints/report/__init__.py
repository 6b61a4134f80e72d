"""REPRODUCTION.md's sections, one module each: checkpoints/make_report.py puts them together."""
