import csv
import io

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import renderers, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from .selectors import balances_for_user, statement_for_user

STATEMENT_COLUMNS = ["id", "at", "asset", "kind", "amount", "balance_after", "reference", "memo"]


class BalanceListApi(APIView):
    class OutputSerializer(serializers.Serializer):
        asset = serializers.CharField()
        available = serializers.DecimalField(max_digits=36, decimal_places=18, normalize_output=True)
        locked = serializers.DecimalField(max_digits=36, decimal_places=18, normalize_output=True)

    def get(self, request):
        return Response(self.OutputSerializer(balances_for_user(user=request.user), many=True).data)


class CsvRenderer(renderers.BaseRenderer):
    """Lets ``?format=csv`` through DRF's content negotiation; the view writes the CSV itself."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        # Only errors reach here (the statement itself is an HttpResponse): render them as JSON text.
        return renderers.JSONRenderer().render(data)


class StatementApi(APIView):
    """The caller's ledger entries, newest first, with the total balance (available + locked) each left.

    ``?format=csv`` downloads every entry matching the filter as CSV instead of one page.
    """

    renderer_classes = [renderers.JSONRenderer, CsvRenderer]

    class FilterSerializer(serializers.Serializer):
        asset = serializers.CharField(required=False, max_length=16)
        cursor = serializers.IntegerField(required=False, min_value=1)
        limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=100)

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        at = serializers.DateTimeField()
        asset = serializers.CharField()
        kind = serializers.CharField()
        amount = serializers.DecimalField(max_digits=36, decimal_places=18, normalize_output=True)
        balance_after = serializers.DecimalField(max_digits=36, decimal_places=18, normalize_output=True)
        reference = serializers.CharField()
        memo = serializers.CharField(allow_blank=True)

    @extend_schema(responses={200: OutputSerializer(many=True)})
    def get(self, request):
        query = self.FilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        as_csv = request.accepted_renderer.format == "csv"
        if as_csv:
            query.validated_data.update(limit=None, cursor=None)
        entries, next_cursor = statement_for_user(user=request.user, **query.validated_data)
        data = self.OutputSerializer(entries, many=True).data
        if as_csv:
            return statement_csv(data, asset=query.validated_data.get("asset"))
        response = Response(data)
        if next_cursor:
            response["X-Next-Cursor"] = str(next_cursor)
        return response


def statement_csv(rows, *, asset: str | None) -> HttpResponse:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=STATEMENT_COLUMNS)
    writer.writeheader()
    writer.writerows({**row, "memo": _cell(row["memo"]), "reference": _cell(row["reference"])} for row in rows)
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    code = "".join(char for char in (asset or "").upper() if char.isalnum())
    name = f"statement-{code}.csv" if code else "statement.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _cell(text: str) -> str:
    # A spreadsheet runs a cell starting with = + - @ as a formula; free text is quoted instead.
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
