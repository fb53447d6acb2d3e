from ledger.services import funds_deposit

from ._move import MoveCommand


class Command(MoveCommand):
    help = "Deposit: move AMOUNT of ASSET from the external account to USERNAME's available balance."
    service = funds_deposit
    verb = "deposited"
