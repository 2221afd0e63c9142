"""The registry-generated conformance suite, as a plugin author would use it."""

from ddbench.testing import *  # noqa: F401,F403
