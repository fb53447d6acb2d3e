from ledger.services import funds_withdraw

from ._move import MoveCommand


class Command(MoveCommand):
    help = "Withdraw: move AMOUNT of ASSET from USERNAME's available balance to the external account."
    service = funds_withdraw
    verb = "withdrew"
