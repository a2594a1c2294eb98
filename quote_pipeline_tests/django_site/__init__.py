"""Tests of the example Django site (examples/django_site) against filled databases."""
