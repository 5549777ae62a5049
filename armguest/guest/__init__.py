"""Files copied into the guest as they are: ``init`` (busybox sh) and the pytest plugin."""
