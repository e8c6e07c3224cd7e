"""``[sources.<name>] type = "halo"``: the keys, validated when the config is loaded."""

from __future__ import annotations

from pydantic import Field, SecretStr

from connectors.http import HttpOptions


class HaloOptions(HttpOptions):
    client_id: str | None = None  # missing credentials: sections unavailable
    client_secret: SecretStr | None = None
    auth_url: str | None = None
    scope: str = "all"
    tenant: str | None = None
    change_ticket_type_id: int | None = None
    ticket_type_ids: tuple[int, ...] | None = None
    # "Next week": a change ticket's planned start, and the status ids that wait on the customer
    # (Halo names statuses per instance; unset: the report does not say which tickets wait)
    change_start_field: str = "startdate"
    waiting_status_ids: tuple[int, ...] | None = None
    closed_since_margin_hours: float = Field(default=24.0, ge=0)
    page_size: int = Field(default=100, ge=1, le=1000)
    # the MSP's internal service-desk summary: teams that are first line (another team = escalated),
    # and the feedback scores that count as positive (Halo: 1 best .. 4 worst, UNVERIFIED)
    first_line_teams: tuple[str, ...] = ("Service Desk",)
    positive_feedback_scores: tuple[int, ...] = (1, 2)
    tenant_reads_from: int = Field(default=3, ge=1)  # a batch of this many clients reads the whole tenant once
