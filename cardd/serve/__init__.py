"""cardd serve: the HTTP service, its limits, its web page and replicas."""
