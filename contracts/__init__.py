"""What callers need to talk to the product's workflows, and nothing else.

One module per workflow, plus :mod:`contracts.search_attributes` and
:mod:`contracts.visibility`; they import only :mod:`d1`, pydantic and ``temporalio.common``
(docs/architecture.md; ``tests/unit/test_import_rules.py`` keeps it so).
"""
