"""Plain logic the flows wire together; no flow is defined here.

Configuration, the worker's trust policy, training, approval and evidence, operation keys, Prefect events and
artifacts.
"""
