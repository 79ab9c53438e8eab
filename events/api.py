"""Webhook endpoints of an issuer, as the issuer API manages them (docs/events.md, "Endpoints").

Routes to build on these (issuer_api/): ``POST /v1/issuers/{issuerId}/webhook-endpoints``
(:meth:`WebhookEndpoints.create`), ``GET`` the same (:meth:`~WebhookEndpoints.list`),
``PATCH …/{endpointId}`` (:meth:`~WebhookEndpoints.update`), ``POST …/{endpointId}/rotate-secret``
(:meth:`~WebhookEndpoints.rotate_secret`), ``POST …/{endpointId}/disable`` and ``/enable``.
The URL is checked here, where the request arrives, and again before every delivery.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from contracts.messages import MESSAGE_REFUSED
from events import contract as c
from events.catalogue import ALL_TYPES
from events.endpoints import EndpointRefused, check_url
from events.signing import new_secret
from settings import EventsSettings

T = TypeVar("T")


class UnknownEventType(ValueError):
    pass


class EndpointNotFound(LookupError):
    pass


class ManagementRefused(PermissionError):
    """The hub refused the message: this process does not seal as the edge (events/hub.py)."""


def refusal(err: WorkflowUpdateFailedError) -> ManagementRefused | None:
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type == MESSAGE_REFUSED:
        return ManagementRefused(cause.message)
    return None


def check_types(event_types: Sequence[str]) -> list[str]:
    unknown = sorted(set(event_types) - set(ALL_TYPES) - {"*"})
    if unknown or not event_types:
        raise UnknownEventType(f"unknown event types {unknown}; known: {', '.join(ALL_TYPES)} or *")
    return list(dict.fromkeys(event_types))


class WebhookEndpoints:
    def __init__(self, client: Client, task_queue: str, settings: EventsSettings | None = None) -> None:
        self._client = client
        self._settings = settings or EventsSettings()
        self._task_queue = self._settings.queue(task_queue)  # the hubs' queue (EVENTS_TASK_QUEUE)

    async def _check(self, url: str) -> str:
        s = self._settings
        return await asyncio.to_thread(
            check_url, url, allow_loopback=s.allow_loopback, allowed_networks=s.allowed_networks
        )

    async def create(
        self, issuer_id: str, url: str, event_types: Sequence[str] = ("*",), description: str | None = None
    ) -> c.EndpointCreated:
        """Register an endpoint; the answer holds its secret, shown this once. Raises
        :class:`~events.endpoints.EndpointRefused` or :class:`UnknownEventType`."""
        spec = c.EndpointSpec(
            url=await self._check(url),
            event_types=check_types(event_types),
            description=description,
            secret=new_secret(),
            created_at=datetime.now(UTC).isoformat(),
        )
        start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            c.HUB_WORKFLOW_TYPE,
            c.HubInput(issuer_id=issuer_id),
            id=c.hub_id(issuer_id),
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"Events and webhook endpoints of issuer {issuer_id}",
        )
        try:
            return await self._client.execute_update_with_start_workflow(
                c.CREATE_ENDPOINT_UPDATE, spec, start_workflow_operation=start, result_type=c.EndpointCreated
            )
        except WorkflowUpdateFailedError as err:
            raise refusal(err) or err from None

    async def list(self, issuer_id: str) -> list[c.EndpointView]:
        handle = self._client.get_workflow_handle(c.hub_id(issuer_id))
        try:
            return await handle.query(c.ENDPOINTS_QUERY, result_type=list[c.EndpointView])
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return []
            raise

    async def get(self, issuer_id: str, endpoint_id: str) -> c.EndpointView:
        for endpoint in await self.list(issuer_id):
            if endpoint.endpoint_id == endpoint_id:
                return endpoint
        raise EndpointNotFound(endpoint_id)

    async def update(
        self,
        issuer_id: str,
        endpoint_id: str,
        *,
        event_types: Sequence[str] | None = None,
        url: str | None = None,
        description: str | None = None,
    ) -> c.EndpointView:
        change = c.EndpointChange(
            endpoint_id=endpoint_id,
            event_types=check_types(event_types) if event_types is not None else None,
            url=await self._check(url) if url is not None else None,
            description=description,
        )
        return await self._update(issuer_id, c.UPDATE_ENDPOINT_UPDATE, change, c.EndpointView)

    async def disable(self, issuer_id: str, endpoint_id: str) -> c.EndpointView:
        change = c.EndpointChange(endpoint_id=endpoint_id, status=c.EndpointStatus.DISABLED)
        return await self._update(issuer_id, c.UPDATE_ENDPOINT_UPDATE, change, c.EndpointView)

    async def enable(self, issuer_id: str, endpoint_id: str) -> c.EndpointView:
        """Resume a disabled endpoint: its backlog (kept while it was disabled) is delivered."""
        change = c.EndpointChange(endpoint_id=endpoint_id, status=c.EndpointStatus.ENABLED)
        return await self._update(issuer_id, c.UPDATE_ENDPOINT_UPDATE, change, c.EndpointView)

    async def rotate_secret(self, issuer_id: str, endpoint_id: str) -> c.EndpointCreated:
        """A new secret; the old ones keep signing for ``EVENTS_SECRET_GRACE`` (both signatures are sent)."""
        rotation = c.SecretRotation(
            endpoint_id=endpoint_id,
            secret=new_secret(),
            at=datetime.now(UTC).isoformat(),
            grace=self._settings.secret_grace,
        )
        return await self._update(issuer_id, c.ROTATE_SECRET_UPDATE, rotation, c.EndpointCreated)

    async def _update(self, issuer_id: str, name: str, arg: object, result_type: type[T]) -> T:
        handle = self._client.get_workflow_handle(c.hub_id(issuer_id))
        try:
            return await handle.execute_update(name, arg, result_type=result_type)
        except WorkflowUpdateFailedError as err:
            raise refusal(err) or EndpointNotFound(str(err.cause)) from None
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise EndpointNotFound(f"issuer {issuer_id} has no endpoints") from None
            raise


__all__ = [
    "EndpointNotFound",
    "EndpointRefused",
    "ManagementRefused",
    "UnknownEventType",
    "WebhookEndpoints",
    "check_types",
]
