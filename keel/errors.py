class KeelError(Exception):
    """An error meant for the operator: printed as is, without a traceback."""
