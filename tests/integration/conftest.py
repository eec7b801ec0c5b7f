"""Integration fixtures shared by all areas; each area keeps its own in a module."""

from docker_fixtures import *  # noqa: F403  (services: docker engine, base image, runtime)
