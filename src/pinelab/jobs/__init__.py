"""Jobs: the durable queue, retry policy, dead letters and the worker."""
