"""Export formats of ``tagtune dataset export``: one module per format, each an :class:`~.base.Exporter`."""
