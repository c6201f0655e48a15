"""`python -m gearshift.cli` runs the `gearshift` command (as the installed script does)."""

from gearshift.cli.app import entrypoint

entrypoint()
