"""One module per export format; each registers itself in :data:`prunebench.export.FORMATS`."""
