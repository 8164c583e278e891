"""End-to-end pipeline: chain the stage functions into a dataset folder, and export it."""
