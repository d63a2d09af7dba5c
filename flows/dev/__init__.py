"""Developer tools: a local Prefect server for the demo and the tests."""
