"""What callers need to talk to the product's workflows, and nothing else.

One module per workflow (:mod:`contracts.card_order`, :mod:`contracts.orphan_inbox`, ...):
its type name, signal / query / update names, workflow ids, input and output types,
error types. Shared by every workflow: :mod:`contracts.search_attributes` and
:mod:`contracts.visibility` (a safe visibility-query builder).

These modules import only :mod:`d1`, pydantic and the SDK's plain data types
(``temporalio.common``), so the receiver, the starter, the CLI and the benchmark can use
them without loading the workflow implementation, the activities, httpx or jwcrypto.
``tests/unit/test_import_rules.py`` keeps it so.
"""
