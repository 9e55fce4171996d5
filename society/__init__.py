"""society: a simulator of LLM agent societies.

The runtime: scenario schema, event loop, population and network, matching,
evolution, LLM backends, run store, checkpoint/resume, replay and the CLI.
"""

__version__ = "0.1.0"
