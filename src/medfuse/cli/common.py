"""What every subcommand shares."""


class UserError(Exception):
    """A mistake in the command line or its inputs: reported in one line, exit status 2."""
