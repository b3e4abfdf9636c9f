"""Locust load tests of the hostscale request path."""
