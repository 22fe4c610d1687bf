"""Running cells: one cell's job and its result file, the sweep's manifest, locks, the local and Slurm
executors, launching and the cells' states."""
