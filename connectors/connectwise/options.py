"""``[sources.<name>] type = "connectwise"``: the keys, validated when the config is loaded."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from connectors.http import HttpOptions

# statuses whose next move is the customer's, as ConnectWise boards commonly name them
WAITING_STATUSES = ("Waiting on Client", "Waiting Customer", "Waiting on Customer")


class ConnectWiseOptions(HttpOptions):
    company_id: str | None = None  # the login company; missing credentials: sections unavailable
    public_key: str | None = None
    private_key: SecretStr | None = None
    client_id: str | None = None  # developer clientId (developer.connectwise.com)
    company_key: Literal["id", "identifier"] = "id"
    change_board: str = "Change Management"
    change_type: str | None = None
    boards: tuple[str, ...] | None = None
    # "Next week": a change ticket's planned start, and the status names that wait on the customer
    change_start_field: str = "estimatedStartDate"
    waiting_statuses: tuple[str, ...] = WAITING_STATUSES
    page_size: int = Field(default=1000, ge=1, le=1000)
    # the MSP's internal service-desk summary: the API members (closedBy) that mean "closed by automation"
    automation_members: tuple[str, ...] = ("RewstAPI",)
    # a survey answer is positive when its totalPoints reach this share of its survey's maximum points
    positive_survey_share: float = Field(default=0.5, gt=0, le=1)
