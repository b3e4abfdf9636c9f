"""Build recipes of the images that run the request path."""
