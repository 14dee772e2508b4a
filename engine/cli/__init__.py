"""Command-line interface: ``fentan <command>``; one ``cmd_<name>.py`` module per command."""
