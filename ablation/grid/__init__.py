"""The plan: the grid's cells, sweep files and their schema, the cell's identity, config rendering and the
planned cells with their ids. Pure Python: nothing here imports torch."""
