"""The data model, below everything else: the tables of the lake, the landing event contract,
the quality rules and the reference data. It imports nothing else of the project."""
