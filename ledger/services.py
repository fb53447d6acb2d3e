"""Every change to a balance goes through here.

``transfers_post`` is the one primitive: it locks the touched accounts in primary-key order,
refuses to take a user account below zero, appends the transfers and updates the materialized
balances, all in the caller's transaction. The named services (deposit, withdraw, hold, release,
settle, adjust) are the vocabulary the rest of the exchange speaks.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from audit.services import audit_record
from exchange_site.db import insert_rows
from exchange_site.errors import RuleViolation

from .amounts import amount_parse
from .models import Asset, LedgerAccount, Transfer

Kind = LedgerAccount.Kind


class InsufficientFunds(RuleViolation):
    def __init__(self, asset_code: str, message: str | None = None):
        super().__init__("insufficient_funds", message or f"Insufficient {asset_code} available.")
        self.asset_code = asset_code


@dataclass(frozen=True, slots=True)
class Posting:
    """One transfer to post: ``amount`` moves from the debit account to the credit account."""

    debit_id: int
    credit_id: int
    asset_id: int
    amount: Decimal
    kind: str
    reference: str
    memo: str = ""


def asset_get(*, code: str) -> Asset:
    try:
        return Asset.objects.get(code=str(code).upper())
    except Asset.DoesNotExist:
        raise RuleViolation("unknown_asset", f"Unknown asset {code!r}.", fields={"asset": ["Unknown asset."]}) from None


def amount_validate(*, amount, asset: Asset, field: str = "amount") -> Decimal:
    """A strictly positive, finite decimal with no more places than the asset allows.

    Text goes through the one amount parser (ledger/amounts.py); a Decimal or an int from code is taken as is.
    """
    if isinstance(amount, str):
        value = amount_parse(amount, field=field, code="invalid_amount")
    elif isinstance(amount, Decimal) or (isinstance(amount, int) and not isinstance(amount, bool)):
        value = Decimal(amount)
    else:
        # A float has already lost exactness; refuse it rather than guess.
        raise RuleViolation(
            "invalid_amount", "Amounts must be decimal strings, not floats.", fields={field: ["Not a decimal string."]}
        )
    if not value.is_finite() or value <= 0:
        raise RuleViolation(
            "invalid_amount", "Amount must be greater than zero.", fields={field: ["Must be greater than zero."]}
        )
    if value.adjusted() >= 18:
        raise RuleViolation("invalid_amount", "Amount is too large.", fields={field: ["Too large."]})
    if -value.as_tuple().exponent > asset.precision and value != value.quantize(Decimal(1).scaleb(-asset.precision)):
        raise RuleViolation(
            "invalid_amount",
            f"{asset.code} amounts have at most {asset.precision} decimal places.",
            fields={field: [f"At most {asset.precision} decimal places."]},
        )
    return value


def accounts_get_or_create(*, specs: Iterable[tuple[int | None, Asset, str]]) -> dict[tuple[int | None, int, str], int]:
    """Ids of the accounts for (user_id, asset, kind), creating missing ones. Returns {(user_id, asset_id, kind): id}."""
    wanted = {}
    for user_id, asset, kind in specs:
        wanted[LedgerAccount.key_for(asset_code=asset.code, kind=kind, user_id=user_id)] = (user_id, asset, kind)
    found = dict(LedgerAccount.objects.filter(key__in=wanted).values_list("key", "id"))
    missing = [key for key in wanted if key not in found]
    if missing:
        LedgerAccount.objects.bulk_create(
            [
                LedgerAccount(key=key, user_id=wanted[key][0], asset=wanted[key][1], kind=wanted[key][2])
                for key in missing
            ],
            ignore_conflicts=True,  # another transaction may have created it meanwhile
        )
        found.update(LedgerAccount.objects.filter(key__in=missing).values_list("key", "id"))
    return {(user_id, asset.id, kind): found[key] for key, (user_id, asset, kind) in wanted.items()}


def transfers_post(*, postings: Sequence[Posting], created_by_id: int | None = None, savepoint: bool = True) -> None:
    """Post transfers atomically; raise InsufficientFunds (and post nothing) if a user account would go negative.

    ``savepoint=False`` for a caller whose own transaction is void on any error (settlement): two
    round trips fewer.
    """
    if not postings:
        return
    deltas: dict[int, Decimal] = defaultdict(Decimal)
    for posting in postings:
        if posting.amount <= 0:
            raise RuleViolation("invalid_amount", "Transfer amounts must be positive.")
        if posting.debit_id == posting.credit_id:
            raise RuleViolation("invalid_transfer", "A transfer needs two distinct accounts.")
        deltas[posting.debit_id] -= posting.amount
        deltas[posting.credit_id] += posting.amount
    with transaction.atomic(savepoint=savepoint):
        # Fixed lock order (primary key) so two transfers touching the same accounts cannot deadlock.
        # No join in this query: MariaDB would lock the joined rows too (it has no FOR UPDATE OF).
        # An account whose balance the postings leave as it was (a clearing account that money only
        # passes through) is read, not locked: every shard's batches pass through it.
        # Plain SQL: this runs for every settlement batch, and the ORM's query building was a
        # measurable part of a small batch.
        select = f"SELECT id, kind, balance, asset_id FROM {LedgerAccount._meta.db_table} WHERE id IN "
        changed = sorted(int(account) for account, delta in deltas.items() if delta)
        unchanged = sorted(int(account) for account, delta in deltas.items() if not delta)
        rows = []
        with connection.cursor() as cursor:
            if changed:
                cursor.execute(f"{select}({', '.join(map(str, changed))}) ORDER BY id FOR UPDATE")
                rows += cursor.fetchall()
            if unchanged:
                cursor.execute(f"{select}({', '.join(map(str, unchanged))})")
                rows += cursor.fetchall()
        accounts = {row[0]: row for row in rows}
        if len(accounts) != len(deltas):
            raise RuleViolation("unknown_account", "A transfer names an account that does not exist.")
        for posting in postings:
            if accounts[posting.debit_id][3] != posting.asset_id or accounts[posting.credit_id][3] != posting.asset_id:
                raise RuleViolation("asset_mismatch", "A transfer moves one asset between accounts of that asset.")
        for account, delta in deltas.items():
            _, kind, balance, asset_id = accounts[account]
            if kind in LedgerAccount.USER_KINDS and balance + delta < 0:
                raise InsufficientFunds(Asset.objects.get(pk=asset_id).code)
        now = timezone.now()
        try:
            insert_rows(
                Transfer._meta.db_table,
                [
                    "asset_id",
                    "debit_account_id",
                    "credit_account_id",
                    "amount",
                    "kind",
                    "reference",
                    "memo",
                    "created_by_id",
                    "created_at",
                ],
                [
                    (
                        p.asset_id,
                        p.debit_id,
                        p.credit_id,
                        p.amount,
                        p.kind,
                        p.reference,
                        p.memo[:255],
                        created_by_id,
                        now,
                    )
                    for p in postings
                ],
            )
        except IntegrityError as exc:
            raise RuleViolation("duplicate_reference", "This operation was already recorded.", status_code=409) from exc
        changed = [(account, delta) for account, delta in deltas.items() if delta]
        if changed:
            table = LedgerAccount._meta.db_table
            cases = " ".join("WHEN %s THEN %s" for _ in changed)
            params: list = []
            for account, delta in changed:
                params += [account, delta]
            params += [account for account, _ in changed]
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {table} SET balance = balance + CASE id {cases} END "
                    f"WHERE id IN ({', '.join('%s' for _ in changed)})",
                    params,
                )


def _reference(prefix: str, reference: str | None) -> str:
    return reference or f"{prefix}:{uuid.uuid4().hex}"


def _move(
    *,
    user: AbstractBaseUser,
    asset: Asset,
    amount,
    debit: tuple[int | None, str],
    credit: tuple[int | None, str],
    kind: str,
    reference: str | None,
    memo: str = "",
    created_by: AbstractBaseUser | None = None,
) -> Decimal:
    value = amount_validate(amount=amount, asset=asset)
    with transaction.atomic():
        ids = accounts_get_or_create(specs=[(debit[0], asset, debit[1]), (credit[0], asset, credit[1])])
        transfers_post(
            postings=[
                Posting(
                    debit_id=ids[(debit[0], asset.id, debit[1])],
                    credit_id=ids[(credit[0], asset.id, credit[1])],
                    asset_id=asset.id,
                    amount=value,
                    kind=kind,
                    reference=_reference(kind, reference),
                    memo=memo,
                )
            ],
            created_by_id=getattr(created_by, "pk", None),
        )
    return value


def funds_deposit(
    *, user, asset: Asset, amount, reference: str | None = None, memo: str = "", created_by=None
) -> Decimal:
    """Money arrives from outside: external -> user's available."""
    return _move(
        user=user,
        asset=asset,
        amount=amount,
        debit=(None, Kind.EXTERNAL),
        credit=(user.pk, Kind.AVAILABLE),
        kind=Transfer.Kind.DEPOSIT,
        reference=reference,
        memo=memo,
        created_by=created_by,
    )


def funds_withdraw(
    *, user, asset: Asset, amount, reference: str | None = None, memo: str = "", created_by=None
) -> Decimal:
    """Money leaves: user's available -> external. Refused beyond what is available."""
    return _move(
        user=user,
        asset=asset,
        amount=amount,
        debit=(user.pk, Kind.AVAILABLE),
        credit=(None, Kind.EXTERNAL),
        kind=Transfer.Kind.WITHDRAWAL,
        reference=reference,
        memo=memo,
        created_by=created_by,
    )


def funds_hold(*, user, asset: Asset, amount, reference: str | None = None, memo: str = "") -> Decimal:
    """Reserve funds for an order: available -> locked."""
    return _move(
        user=user,
        asset=asset,
        amount=amount,
        debit=(user.pk, Kind.AVAILABLE),
        credit=(user.pk, Kind.LOCKED),
        kind=Transfer.Kind.HOLD,
        reference=reference,
        memo=memo,
    )


def funds_release(*, user, asset: Asset, amount, reference: str | None = None, memo: str = "") -> Decimal:
    """Give back what an order no longer needs: locked -> available."""
    return _move(
        user=user,
        asset=asset,
        amount=amount,
        debit=(user.pk, Kind.LOCKED),
        credit=(user.pk, Kind.AVAILABLE),
        kind=Transfer.Kind.RELEASE,
        reference=reference,
        memo=memo,
    )


def funds_send_held(
    *, user, asset: Asset, amount, reference: str | None = None, memo: str = "", created_by=None
) -> Decimal:
    """Held money leaves (an approved withdrawal): user's locked -> external."""
    return _move(
        user=user,
        asset=asset,
        amount=amount,
        debit=(user.pk, Kind.LOCKED),
        credit=(None, Kind.EXTERNAL),
        kind=Transfer.Kind.WITHDRAWAL,
        reference=reference,
        memo=memo,
        created_by=created_by,
    )


def funds_settle(*, payer, payee, asset: Asset, amount, fee=Decimal(0), reference: str, memo: str = "") -> None:
    """A trade leg: ``amount`` leaves the payer's locked funds; the payee receives it less ``fee``, which goes to the fee account."""
    value = amount_validate(amount=amount, asset=asset)
    fee = Decimal(fee)
    if fee < 0 or fee > value:
        raise RuleViolation("invalid_fee", "The fee must be between zero and the amount.")
    with transaction.atomic():
        ids = accounts_get_or_create(
            specs=[(payer.pk, asset, Kind.LOCKED), (payee.pk, asset, Kind.AVAILABLE), (None, asset, Kind.FEES)]
        )
        postings = []
        if value - fee > 0:
            postings.append(
                Posting(
                    ids[(payer.pk, asset.id, Kind.LOCKED)],
                    ids[(payee.pk, asset.id, Kind.AVAILABLE)],
                    asset.id,
                    value - fee,
                    Transfer.Kind.TRADE,
                    reference,
                    memo,
                )
            )
        if fee > 0:
            postings.append(
                Posting(
                    ids[(payer.pk, asset.id, Kind.LOCKED)],
                    ids[(None, asset.id, Kind.FEES)],
                    asset.id,
                    fee,
                    Transfer.Kind.FEE,
                    f"{reference}:fee",
                    memo,
                )
            )
        transfers_post(postings=postings)


def balance_adjust(
    *, user, asset: Asset, amount, direction: str, reason: str, operator, reference: str | None = None
) -> Decimal:
    """An operator's correction, recorded with who did it and why; never an edit of past transfers.

    ``reference`` makes it idempotent (the admin form carries one generated when it is shown): the
    same reference again is refused with ``duplicate_reference`` and adjusts nothing.
    """
    reason = (reason or "").strip()
    if not reason:
        raise RuleViolation("reason_required", "An adjustment needs a reason.", fields={"reason": ["Required."]})
    if direction == "credit":
        debit, credit = (None, Kind.EXTERNAL), (user.pk, Kind.AVAILABLE)
    elif direction == "debit":
        debit, credit = (user.pk, Kind.AVAILABLE), (None, Kind.EXTERNAL)
    else:
        raise RuleViolation("invalid_direction", "Direction is credit or debit.")
    reference = f"adjustment:{reference.strip()}" if reference and reference.strip() else None
    with transaction.atomic():
        value = _move(
            user=user,
            asset=asset,
            amount=amount,
            debit=debit,
            credit=credit,
            kind=Transfer.Kind.ADJUSTMENT,
            reference=reference,
            memo=f"{operator.get_username()}: {reason}",
            created_by=operator,
        )
        audit_record(
            actor=operator,
            action="balance_adjust",
            target=f"user:{user.pk} {user.get_username()}",
            reason=reason,
            details={"asset": asset.code, "amount": str(value), "direction": direction, "reference": reference},
        )
    return value


DEFAULT_PRECISION = {"USD": 8, "USDT": 8, "EUR": 8, "BTC": 8, "ETH": 8}


def asset_get_or_create(*, code: str, precision: int | None = None, name: str = "") -> Asset:
    code = (code or "").strip().upper()
    if not code.isalnum() or len(code) > 16:
        raise RuleViolation("invalid_asset", f"Asset codes are letters and digits, not {code!r}.")
    asset, _ = Asset.objects.get_or_create(
        code=code,
        defaults={"precision": precision if precision is not None else DEFAULT_PRECISION.get(code, 8), "name": name},
    )
    return asset


# --- the order door's hold path ---------------------------------------------------------------
#
# Placing orders is the busiest writer of the ledger, so it has its own two-statement path: one
# SELECT ... FOR UPDATE of the user's accounts, then (after the caller decided what fits) one
# multi-row INSERT of hold transfers and one UPDATE of balances. Web threads share the id memo
# below: entries are only ever added or dropped whole, which a dict does atomically under the GIL.

# (user_id, asset_id, kind) -> ledger account id. Ids never change once created, so they are
# remembered per process; every use re-reads the row and checks it is still that account (a test
# database recreated under a running process), so a stale id is dropped, never trusted.
_account_ids: dict[tuple[int, int, str], int] = {}


class FundsMoved(InsufficientFunds):
    """An available balance read without a lock fell below what ``holds_post`` is to hold: nothing was
    written, and the caller's transaction must be rolled back (the caller reads again, locked)."""

    def __init__(self):
        super().__init__("funds")


@dataclass(slots=True)
class HoldAccounts:
    """One user's available and locked accounts of an asset, with the available balance as read."""

    asset: Asset
    available_id: int
    locked_id: int
    available: Decimal


def hold_accounts_read(*, wanted: Iterable[tuple[int, Asset]], lock: bool) -> dict[tuple[int, int], HoldAccounts]:
    """The available and locked accounts of each (user id, asset) in ``wanted`` (created if missing),
    read in one SELECT in id order, whatever users they belong to; with ``lock``, ... FOR UPDATE (call
    inside the caller's transaction), else the last committed balances, which ``holds_post`` checks
    again under its own lock.

    Returns {(user_id, asset_id): HoldAccounts}.
    """
    pairs = {(user_id, asset.id): asset for user_id, asset in wanted}
    for _ in range(2):
        keys = {
            (user_id, asset_id, kind): asset
            for (user_id, asset_id), asset in pairs.items()
            for kind in (Kind.AVAILABLE, Kind.LOCKED)
        }
        missing = [key for key in keys if key not in _account_ids]
        if missing:
            created = accounts_get_or_create(specs=[(key[0], keys[key], key[2]) for key in missing])
            _account_ids.update(created)
        ids = {key: _account_ids[key] for key in keys}
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, user_id, asset_id, kind, balance FROM {LedgerAccount._meta.db_table} "
                f"WHERE id IN ({', '.join(str(int(i)) for i in sorted(ids.values()))}) ORDER BY id"
                + (" FOR UPDATE" if lock else "")
            )
            rows = {row[0]: row for row in cursor.fetchall()}
        stale = [key for key, account_id in ids.items() if rows.get(account_id, (None,))[1:4] != key]
        if not stale:
            return {
                (user_id, asset_id): HoldAccounts(
                    asset=asset,
                    available_id=ids[(user_id, asset_id, Kind.AVAILABLE)],
                    locked_id=ids[(user_id, asset_id, Kind.LOCKED)],
                    available=rows[ids[(user_id, asset_id, Kind.AVAILABLE)]][4],
                )
                for (user_id, asset_id), asset in pairs.items()
            }
        for key in stale:
            _account_ids.pop(key, None)
    raise RuntimeError("ledger accounts changed under a hold twice in a row")


def holds_post(
    *, accounts: dict[tuple[int, int], HoldAccounts], holds: Sequence[tuple[tuple[int, int], Decimal, str]]
) -> None:
    """Post hold transfers (available -> locked), ``holds`` = [((user_id, asset_id), amount, reference)], on
    accounts read by ``hold_accounts_read`` (locked or not): one UPDATE and one INSERT, in the caller's
    transaction.

    Refuses the whole set if an available balance would go below zero: InsufficientFunds by the
    balances read, FundsMoved when the balance changed since an unlocked read (the caller's
    transaction must then roll back). Callers decide beforehand which orders fit, so this is the
    ledger's own guard.
    """
    if not holds:
        return
    totals: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
    for key, amount, _ in holds:
        if amount <= 0:
            raise RuleViolation("invalid_amount", "Transfer amounts must be positive.")
        totals[key] += amount
    for key, total in totals.items():
        if accounts[key].available < total:
            raise InsufficientFunds(accounts[key].asset.code)
    now = timezone.now().replace(tzinfo=None)  # raw SQL: MariaDB stores naive UTC
    rows = []
    params: list = []
    for key, amount, reference in holds:
        account = accounts[key]
        rows.append("(%s, %s, %s, %s, %s, %s, '', NULL, %s)")
        params += [
            account.asset.id,
            account.available_id,
            account.locked_id,
            amount,
            Transfer.Kind.HOLD,
            reference,
            now,
        ]
    cases = []
    case_params: list = []
    for key, total in totals.items():
        account = accounts[key]
        cases.append("WHEN %s THEN %s WHEN %s THEN %s")
        case_params += [account.available_id, -total, account.locked_id, total]
    touched = [i for key in totals for i in (accounts[key].available_id, accounts[key].locked_id)]
    change = f"CASE id {' '.join(cases)} END"
    with connection.cursor() as cursor:
        # The balances first, each row only if it stays at or above zero: the rows are locked from
        # here to the commit, two statements later, and a balance that moved since it was read
        # (unlocked) is caught here rather than trusted.
        cursor.execute(
            f"UPDATE {LedgerAccount._meta.db_table} SET balance = balance + {change} "
            f"WHERE id IN ({', '.join(str(int(i)) for i in touched)}) AND balance + {change} >= 0",
            case_params + case_params,
        )
        if cursor.rowcount != len(touched):
            raise FundsMoved()
        try:
            cursor.execute(
                f"INSERT INTO {Transfer._meta.db_table} (asset_id, debit_account_id, credit_account_id, amount, "
                f"kind, reference, memo, created_by_id, created_at) VALUES {', '.join(rows)}",
                params,
            )
        except IntegrityError as exc:
            raise RuleViolation("duplicate_reference", "This operation was already recorded.", status_code=409) from exc
    for key, total in totals.items():
        accounts[key].available -= total
