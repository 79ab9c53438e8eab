"""What issuer services call: a Python API (:mod:`starter.api`) and a CLI (:mod:`starter.cli`)."""
