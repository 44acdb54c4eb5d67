"""Prefect flows and tasks: thin orchestration over ``ghnerf``, ``teachers`` and ``storage``."""
