"""What agents are measured on: SWE-bench, Polyglot and the built-in offline suites."""
