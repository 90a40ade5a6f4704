"""The six research families, each a module keeping the contract of trainables/family_api.py and
its Config (defaults: the seed's documented values) in <name>_config.py; registered with their
search spaces in trainables/registry.py."""
