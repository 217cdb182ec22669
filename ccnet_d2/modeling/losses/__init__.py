"""losses of ccnet_d2 (importing registers them)."""
