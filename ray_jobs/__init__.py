"""The six commands (sweep, train, confirm, compare, analyze, generate) and the packages beneath
them, each importing only from those before it: core, results, search, confirmation, reports,
cli (docs/architecture.md; tests/test_architecture.py checks the order)."""
