"""``taskrunner``: the command-line client of the task API, packaged apart from the service
(it ships in no Lambda bundle and imports nothing of ``functions/``)."""

__version__ = "2.0.0"
