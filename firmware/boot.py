# Runs first on every boot. Kept minimal: anything that can fail lives in main.py, where the
# firmware can report it instead of leaving the board silent.
import gc

gc.collect()
