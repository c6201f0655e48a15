"""`python -m gearshift` runs the `gearshift` command (as the installed script does)."""

from gearshift.cli.app import entrypoint

entrypoint()
