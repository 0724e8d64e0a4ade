"""Where untrusted agent code runs. Imports nothing from the other layers."""
