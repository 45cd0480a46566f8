"""The one exception type that means "the user gave us something we cannot use".

The CLI turns a :class:`UserError` into a single line on stderr and exit status 2
(a traceback only with ``--debug``). Raise it for bad names, bad files, bad values;
let genuine bugs surface as ordinary exceptions.
"""


class UserError(Exception):
    """A problem with the user's input; the message names the problem and the fix."""
