"""``@reportbot settings`` and ``@reportbot test <CODE>``: the admins' settings card and test sends.

- ``settings`` (the review channel or a personal chat) answers the settings card
  (:func:`cards.settings.settings_card`) to a configured admin (``[teams] admins``), and a refusal
  to anyone else; ``settings CODE`` shows that customer alone (a smaller card).
- The card's Save (``settingsSave``) is checked again here — the submitter must be an admin,
  whatever card they hold — then parsed and validated (:func:`reporting.overrides.parse_form`)
  and stored as a new version by compare-and-set on the version the form showed
  (:class:`bot.admin_settings.SettingsStore`). A refused save stores nothing and says why on the
  card, naming the field and the value.
- ``test CODE`` and the card's "Send me a test report" (``settingsTest``) make the customer's
  report for the last complete week and email it only to the person who asked
  (:class:`TestSender`): their address comes from Teams (``TeamsInfo.get_member``: ``email``,
  else ``userPrincipalName``), never from the card. Nothing is archived, posted or recorded as
  the week's delivery, and the week's draft is not touched.
"""

from __future__ import annotations

import difflib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from botbuilder.core import TurnContext
from botbuilder.core.teams import TeamsInfo
from botbuilder.schema import ConversationReference

from bot.admin_settings import LiveSettings, StaleSettings
from bot.delivery import DeliveryBackend, Parcel, PermanentError
from bot.review import Review, User
from bot.review_cards import card_message
from bot.routing import Where
from bot.settings import BotSettings
from cards.elements import CardTooLarge
from cards.settings import CustomerView, SettingsView, settings_card, settings_refused_card
from cards.text import plain
from cards.unknown import unknown_customer_card
from cards.verbs import DATA_SETTINGS_VERSION, VERB_SETTINGS_SAVE, VERB_SETTINGS_TEST
from reporting import fmt
from reporting.config import Config
from reporting.overrides import ReportSettings, SettingsInvalid, check_address, parse_form
from reporting.period import WeekNotEnded
from reporting.text import neutral

log = logging.getLogger(__name__)

NOT_ADMIN = "Only the configured admins ([teams] admins) may change the report settings; nothing was saved."
NOT_ADMIN_SHOW = "Only the configured admins ([teams] admins) may see and change the report settings."
NOT_HERE = "Report settings are changed in the review channel or in a personal chat with me."


async def known_code(tc: TurnContext, typed: str, codes: list[str]) -> str | None:
    """The customer code ``typed`` names (any case), or None after answering the unknown-customer
    card with the close matches among ``codes``."""
    target = typed.upper()
    if target in codes:
        return target
    await send_card(tc, unknown_customer_card(typed, difflib.get_close_matches(target, codes, n=3, cutoff=0.5)))
    return None


class TestSendError(Exception):
    """A test send that cannot be made; ``str()`` is told to the requester."""


class TestSender:
    """The customer's report for the last complete week, emailed to one address, marked TEST.

    Built by the engine without storing anything (no history snapshot, no draft, no files under
    ``OUT``), rendered with "TEST" on the cover and every page, and sent through the email
    step's backend alone with a one-off delivery id — never the channel or the archive, and never
    through :class:`bot.delivery.Deliverer`, so no delivery is recorded for the week."""

    def __init__(
        self,
        config: Config,
        review: Review | None,
        backend: DeliveryBackend | None,
        live: LiveSettings | None = None,
    ):
        self.config = config
        self.review = review  # its engine builds and renders; its week_day is the last complete week
        self.backend = backend
        self.live = live

    @property
    def available(self) -> bool:
        return self.backend is not None and self.review is not None

    async def send(self, code: str, to: str, requested_by: User) -> str:
        """Make and send; what happened, in words. :class:`TestSendError` when it cannot."""
        if self.backend is None or self.review is None:
            raise TestSendError("Email delivery is not configured here, so no test report can be sent.")
        engine = self.review.engine
        customer = self.config.customer(code)
        period = engine.batch_period(customer, self.review.week_day())
        try:
            report = await engine.build(customer, period)
        except WeekNotEnded as err:
            raise TestSendError(f"{err}.") from err
        pdf = await engine.pdf(report, replace(engine.branding, test=True))
        msp_name = self.live.now.msp_name if self.live is not None else ""
        parcel = Parcel(
            draft_id=f"test-{uuid.uuid4().hex}",
            code=code,
            customer=customer,
            period_end=period.end_date,
            report=report,
            pdf=pdf,
            approved_by=f"test requested by {requested_by.label}",
            recipients=(to,),
            msp_name=msp_name,
            test=True,
        )
        try:
            await self.backend.send_email(parcel, parcel.key("email"))
        except PermanentError as err:
            raise TestSendError(f"The test email could not be sent: {err}") from err
        log.info(
            "test report of %s for %s sent to the requester",
            code,
            period.end_date,
            extra={"customer": code, "period": period.end_date.isoformat(), "step": "test"},
        )
        return f"TEST report of {code} ({fmt.report_week(report)}) sent to {plain(to)} only."


async def requester_email(tc: TurnContext) -> str | None:
    """The address Teams has for whoever sent this activity (``email``, else the UPN when it is
    an address), checked as a plain address; None when Teams gives none."""
    member_id = tc.activity.from_property.id if tc.activity.from_property else None
    if not member_id:
        return None
    try:
        member = await TeamsInfo.get_member(tc, member_id)
    except Exception as err:  # the connector's 404 (not a member) or any failure: no address
        log.warning("could not read the requester's address from Teams: %s", type(err).__name__)
        return None
    for candidate in (getattr(member, "email", None), getattr(member, "user_principal_name", None)):
        if isinstance(candidate, str) and candidate:
            try:
                return check_address(candidate.strip(), "email")
            except SettingsInvalid:
                continue
    return None


async def send_card(tc: TurnContext, card: dict[str, Any]) -> None:
    await tc.send_activity(card_message(card))


class Admin:
    def __init__(
        self,
        settings: BotSettings,
        config: Config,
        live: LiveSettings | None,
        tester: TestSender | None,
        spawn: Callable[[Awaitable[None]], None],
        tell: Callable[[ConversationReference, str], Awaitable[None]],
    ):
        self.settings = settings
        self.config = config
        self.live = live
        self.tester = tester
        self.spawn = spawn
        self.tell = tell
        self.codes = [c.code for c in config.customers]
        self.testing: set[tuple[str, str]] = set()  # (requester, code) test sends in flight: one at a time

    # ---- the card ---------------------------------------------------------------------------
    def _admins_note(self) -> str | None:
        if self.settings.sandbox and not self.settings.admins:
            return "Sandbox mode: no admins are configured, so anyone here may change these settings."
        return None

    async def view(
        self,
        current: ReportSettings,
        codes: list[str],
        message: str | None = None,
        problems: list[str] | None = None,
    ) -> SettingsView:
        saved_by = None
        if current.version and self.live is not None:
            history = await self.live.store.history(limit=1)
            if history:
                h = history[0]
                saved_by = f"{h.saved_by_name or h.saved_by_id} on {fmt.stamp(h.saved_at, self.config.msp.timezone)}"
        customers = []
        for code in codes:
            c = self.config.customer(code)
            s = current.customer(code)
            file_to = c.recipients.executive or tuple(a for a in (c.cto_email, c.account_owner_email) if a)
            customers.append(
                CustomerView(
                    code,
                    c.name,
                    s.enabled,
                    s.executive,
                    s.technical,
                    s.period,
                    file_to,
                    c.recipients.technical,
                    file_period=c.period,
                )
            )
        return SettingsView(
            version=current.version,
            msp_name=current.msp_name,
            msp_name_file=self.config.msp.name,
            customers=customers,
            owners=current.owners,
            managers=current.managers,
            owners_file=self.config.internal_reports.owners,
            managers_file=self.config.internal_reports.managers,
            saved_by=saved_by,
            message=message,
            problems=tuple(problems or ()),
            admins_note=self._admins_note(),
        )

    async def card(
        self, codes: list[str], message: str | None = None, problems: list[str] | None = None
    ) -> dict[str, Any]:
        assert self.live is not None  # noqa: S101 - callers check
        current = await self.live.refresh()
        try:
            return settings_card(await self.view(current, codes, message, problems))
        except CardTooLarge:
            return settings_refused_card(
                f"The settings of all {len(codes)} customers do not fit on one card; "
                "send settings CODE for one customer's."
            )

    async def show(self, tc: TurnContext, where: Where, user: User, args: list[str]) -> None:
        if where.kind not in ("review", "personal"):
            await tc.send_activity(NOT_HERE)
            return
        if self.live is None:
            await tc.send_activity("Report settings need the store; they are not available in this mode.")
            return
        if not self.settings.may_administer(user.aad_object_id):
            await send_card(tc, settings_refused_card(NOT_ADMIN_SHOW))
            return
        codes = self.codes
        if args:
            target = await known_code(tc, args[0], self.codes)
            if target is None:
                return
            codes = [target]
        await send_card(tc, await self.card(codes))

    # ---- the card's buttons -----------------------------------------------------------------
    async def act(self, tc: TurnContext, verb: str, data: dict[str, Any], user: User, where: Where) -> dict[str, Any]:
        if where.kind not in ("review", "personal"):
            return settings_refused_card(NOT_HERE)
        if self.live is None:
            return settings_refused_card("Report settings need the store; they are not available in this mode.")
        if not self.settings.may_administer(user.aad_object_id):
            log.warning("refused %s from a non-admin in %s", verb, where.conversation_key)
            return settings_refused_card(NOT_ADMIN)
        if verb == VERB_SETTINGS_SAVE:
            return await self.save(data, user)
        if verb == VERB_SETTINGS_TEST:
            code = data.get("customer")
            if not isinstance(code, str) or code not in self.codes:
                return settings_refused_card("That test button names no configured customer; nothing was sent.")
            message = await self.start_test(tc, code, user, on_card=True)
            return await self.card(self.codes_on_card(data), message)
        return settings_refused_card("That card action was not recognised; nothing was changed.")

    def codes_on_card(self, data: dict[str, Any]) -> list[str]:
        """The customers whose inputs the submitted card carried (a one-customer card stays one)."""
        shown = [c for c in self.codes if any(k.startswith(f"customers.{c}.") for k in data)]
        return shown or self.codes

    async def save(self, data: dict[str, Any], user: User) -> dict[str, Any]:
        assert self.live is not None  # noqa: S101 - act checks
        codes = self.codes_on_card(data)
        try:
            expected = int(data.get(DATA_SETTINGS_VERSION))  # type: ignore[arg-type]  # None and non-numbers: caught
        except (TypeError, ValueError):
            return settings_refused_card("The card carried no settings version; nothing was saved.")
        current = await self.live.refresh()
        if expected != current.version:  # a stale form: refused before its values are even read
            return await self.card(codes, problems=[str(StaleSettings(current))])
        try:
            new = parse_form(data, current, codes)
        except SettingsInvalid as err:
            return settings_card(await self.view(current, codes, problems=err.problems))
        customer_side = [
            f"internal_reports.{key}: {address} is an address of customer {code}; the internal reports name "
            "technicians and never go to a customer"
            for key in ("owners", "managers")
            for address in getattr(new, key)
            if (code := self.config.customer_of_address(address)) is not None
        ]
        if customer_side:
            return settings_card(await self.view(current, codes, problems=customer_side))
        try:
            saved = await self.live.store.save(expected, new, user.aad_object_id, user.name)
        except StaleSettings as err:
            return await self.card(codes, problems=[str(err)])
        self.live.apply(saved)
        if saved.version == current.version:
            return await self.card(codes, "Nothing changed; nothing was saved.")
        return await self.card(codes, f"Saved as version {saved.version} by {user.label}.")

    # ---- test sends -------------------------------------------------------------------------
    async def start_test(self, tc: TurnContext, code: str, user: User, *, on_card: bool = False) -> str:
        """Check who asked and start the send in the background; what to tell them now (as chat
        Markdown, or ``on_card`` as plain text, which the card escapes itself)."""
        if self.tester is None or not self.tester.available:
            return "Email delivery is not configured here, so no test report can be sent."
        to = await requester_email(tc)
        if to is None:
            return (
                "Teams has no email address for you (neither email nor userPrincipalName), so the test "
                "report was not made. Nothing was sent."
            )
        shown = to if on_card else plain(to)
        key = (user.aad_object_id or to, code)
        if key in self.testing:
            return f"Your TEST report of {code} is still being made; it goes to {shown} when done."
        origin = TurnContext.get_conversation_reference(tc.activity)
        tester = self.tester
        self.testing.add(key)

        async def run() -> None:
            try:
                said = await tester.send(code, to, user)
            except TestSendError as err:
                said = f"{code}: {err}"
            except Exception as err:  # one test's failure is told, never raised into the bot
                log.exception("test send of %s failed", code)
                said = f"{code}: the test report could not be made ({type(err).__name__})."
            finally:
                self.testing.discard(key)
            await self.tell(origin, neutral(said))

        self.spawn(run())
        return f"Making the TEST report of {code} for its last complete period; it goes to {shown} only."

    async def test(self, tc: TurnContext, where: Where, user: User, args: list[str]) -> None:
        if where.kind not in ("review", "personal"):
            await tc.send_activity("Test reports are asked for in the review channel or in a personal chat with me.")
            return
        if not (self.settings.may_administer(user.aad_object_id) or self.settings.may_run(user.aad_object_id)):
            await tc.send_activity("Only the configured admins and engineers may ask for a test report.")
            return
        if not args:
            await tc.send_activity("Say which customer: **test CODE**.")
            return
        target = await known_code(tc, args[0], self.codes)
        if target is None:
            return
        await tc.send_activity(await self.start_test(tc, target, user))
