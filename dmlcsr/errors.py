"""The one exception type the toolkit raises for user-facing problems.

Every message is a single line that names the problem and the fix; the CLIs print it
without a traceback. Torch-free, so the runtime can use it too.
"""


class DmlcsrError(Exception):
    """A problem with the user's input (file, checkpoint, image, option) and how to fix it."""


class DmlcsrWarning(UserWarning):
    """A choice that works but costs speed or accuracy (e.g. INT8 on a CPU without VNNI),
    with the better choice named; filter it with the warnings module like any other."""
