"""Names of the product's metrics and span attributes, in one place.

Pure constants (no imports): the workflow module imports them through the sandbox, and
dashboards, alerts and the README refer to the same spellings. Counters get ``_total``
appended on the Prometheus endpoint.
"""

from __future__ import annotations

# --- counters recorded by the workflow (replay-safe through workflow.metric_meter()).
ORDERS_STARTED = "card_orders_started"
ORDERS_FINISHED = "card_orders_finished"  # label outcome: DELIVERED, REJECTED, CANCELED, ...
NOTIFICATIONS_DUPLICATED = "d1_notifications_duplicated"
# A notification for an order that already has its outcome (late), seen by the workflow
# during its close grace or by the receiver once the workflow is closed (label ``seen_by``).
NOTIFICATIONS_LATE = "d1_notifications_late"
# A signal or update without the authenticated argument it needs (label ``handler``): sent by a
# client without the product's keys, refused without touching the order.
MESSAGES_REFUSED = "card_order_messages_refused"

# Service levels (workflows/service_levels.py), labels issuer_id, program, issuance, priority.
REQUEST_TO_SHIPPED = "card_order_request_to_shipped_seconds"  # histogram
SHIPPED_TO_DELIVERED = "card_order_shipped_to_delivered_seconds"  # histogram
REQUEST_TO_DELIVERED = "card_order_request_to_delivered_seconds"  # histogram
SERVICE_DURATIONS = (REQUEST_TO_SHIPPED, SHIPPED_TO_DELIVERED, REQUEST_TO_DELIVERED)
# An hour to a month (seconds): D1's service levels run from hours (URGENT) to D+10 (RENEWAL).
SERVICE_DURATION_BUCKETS = tuple(
    float(hours * 3600) for hours in (1, 2, 4, 8, 12, 24, 36, 48, 72, 96, 120, 168, 240, 336, 504, 720)
)
SHIPPED_LATE = "card_orders_shipped_late"  # shipped after the end of D1's due date
RETURNED = "card_orders_returned"
EXCEPTIONS = "card_orders_exceptions"  # label kind: DATA_EXCEPTION, PRODUCTION_EXCEPTION, CARRIER_EXCEPTION

# --- gauges set by the worker from visibility counts (worker.py).
ORDERS_PAST_DUE = "card_orders_past_due"  # running, not shipped by the end of the due date
ORDERS_OPEN = "card_orders_open"  # running without an outcome, label stage

# --- counters recorded by the receiver.
NOTIFICATIONS_RECEIVED = "d1_notifications_received"  # label operation
NOTIFICATIONS_UNKNOWN = "d1_notifications_unknown"  # no order was ever started for it
# label kind: temporal_unavailable or message_refused (both answered 503), bug (500)
RECEIVER_ERRORS = "d1_receiver_errors"
# D1's Card Activation calls (receiver/activation.py), label outcome: activated,
# activated_before_delivery, refused_before_delivery, cms_card_unknown, cms_refused, cms_unavailable.
CARD_ACTIVATIONS = "card_orders_activations"
# Those of a card not delivered yet (label refused: "true" / "false"); the alert
# CardActivatedBeforeDelivery watches it (the service-level alert rules).
ACTIVATIONS_BEFORE_DELIVERY = "card_orders_activations_before_delivery"

# --- recorded by the payload codec (security/codec.py) in every process that serves metrics.
PAYLOADS_REFUSED = "temporal_payloads_refused"  # label reason: unencrypted, unknown_key, tampered

# --- D1 HTTP calls made by the worker's activities.
D1_REQUESTS = "d1_http_requests"  # labels endpoint, status_code ("timeout", "error" without a response)
D1_REQUEST_DURATION = "d1_http_request_duration_seconds"  # histogram, same labels
D1_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# --- span attributes: identifiers only, never card data, names or addresses.
ATTR_ISSUER_ID = "d1.issuer_id"
ATTR_CARD_ID = "d1.card_id"
ATTR_ISSUER_REQUEST_ID = "d1.issuer_request_id"
ATTR_OPERATION_ID = "d1.operation_id"
ATTR_OPERATION = "d1.operation"
ATTR_PRODUCTION_STATUS = "d1.production_status"
ATTR_SHIPMENT_STATUS = "d1.shipment_status"
ATTR_ENDPOINT = "d1.endpoint"
ATTR_DELIVERY = "d1.notification.delivery"
ATTR_WORKFLOW_ID = "temporal.workflow_id"
