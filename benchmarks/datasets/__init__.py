"""Converters from public NLU benchmark data sets to Rasa NLU YAML (train/val/test)."""
