"""Datasets, mappers and augmentations of ccnet_d2 (importing registers the datasets)."""
