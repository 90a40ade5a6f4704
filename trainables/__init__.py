"""What trains: the family contract (family_api.py) and config helpers (config.py) at the top;
the engine, one loop for every family, in engine/; the families in families/."""
