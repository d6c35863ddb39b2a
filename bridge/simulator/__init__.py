"""Emulated legacy cameras, one module per dialect, sharing the media generator."""
