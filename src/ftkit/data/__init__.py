"""Datasets: the registry, loaders, format converters, tokenization with label masks."""
