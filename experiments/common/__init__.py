"""What the study runners under experiments/ share and the library does not need: reading finished
run directories into table rows (study.py: RunDir, mean ± sd, records, the runner driver and the
README's opening lines) and the figures only studies draw (plots.py). Runners put experiments/ on
sys.path and `from common import study, plots`."""
