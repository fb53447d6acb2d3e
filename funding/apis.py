from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from orders.apis import PageInputSerializer, paged

from .models import FundingRequest
from .selectors import funding_request_for_user, funding_requests_for_user
from .services import deposit_request, withdrawal_cancel, withdrawal_request

Kind = FundingRequest.Kind


class AmountField(serializers.CharField):
    """A decimal string; a JSON number is refused, since a float may already have lost digits."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError('Send amounts as decimal strings, e.g. "12.50".')
        return super().to_internal_value(data)


class FundingRequestOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    asset = serializers.CharField(source="asset.code")
    amount = serializers.DecimalField(max_digits=36, decimal_places=18, normalize_output=True)
    status = serializers.CharField()
    reason = serializers.CharField()
    client_request_id = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class WithdrawalOutputSerializer(FundingRequestOutputSerializer):
    destination = serializers.CharField()


class FilterSerializer(PageInputSerializer):
    asset = serializers.CharField(required=False, max_length=16)


def _body(request) -> dict:
    if not isinstance(request.data, dict):
        raise serializers.ValidationError("The body must be a JSON object.")
    return request.data


class DepositListCreateApi(APIView):
    """Deposit requests: pending until an operator confirms them (or at once in demo mode)."""

    class InputSerializer(serializers.Serializer):
        asset = serializers.CharField(max_length=16)
        amount = AmountField(max_length=60)
        client_request_id = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=64)

    @extend_schema(
        operation_id="deposits_list", parameters=[FilterSerializer], responses=FundingRequestOutputSerializer(many=True)
    )
    def get(self, request):
        query = FilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        query.validated_data.pop("symbol", None)
        rows, next_cursor = funding_requests_for_user(user=request.user, kind=Kind.DEPOSIT, **query.validated_data)
        return paged(FundingRequestOutputSerializer(rows, many=True).data, next_cursor)

    @extend_schema(
        responses={
            201: FundingRequestOutputSerializer,
            200: OpenApiResponse(FundingRequestOutputSerializer, "client_request_id seen before."),
        }
    )
    def post(self, request):
        payload = self.InputSerializer(data=_body(request))
        payload.is_valid(raise_exception=True)
        deposit, created = deposit_request(user=request.user, **payload.validated_data)
        return Response(
            FundingRequestOutputSerializer(deposit).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class WithdrawalListCreateApi(APIView):
    """Withdrawal requests: the amount is held at once; an operator approves or rejects."""

    class InputSerializer(serializers.Serializer):
        asset = serializers.CharField(max_length=16)
        amount = AmountField(max_length=60)
        destination = serializers.CharField(max_length=200)
        client_request_id = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=64)

    @extend_schema(
        operation_id="withdrawals_list", parameters=[FilterSerializer], responses=WithdrawalOutputSerializer(many=True)
    )
    def get(self, request):
        query = FilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        query.validated_data.pop("symbol", None)
        rows, next_cursor = funding_requests_for_user(user=request.user, kind=Kind.WITHDRAWAL, **query.validated_data)
        return paged(WithdrawalOutputSerializer(rows, many=True).data, next_cursor)

    @extend_schema(
        responses={
            201: WithdrawalOutputSerializer,
            200: OpenApiResponse(WithdrawalOutputSerializer, "client_request_id seen before."),
        }
    )
    def post(self, request):
        payload = self.InputSerializer(data=_body(request))
        payload.is_valid(raise_exception=True)
        withdrawal, created = withdrawal_request(user=request.user, **payload.validated_data)
        return Response(
            WithdrawalOutputSerializer(withdrawal).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class WithdrawalDetailApi(APIView):
    """One withdrawal; ``DELETE`` cancels it while pending (the hold is released), ``200`` with it."""

    @extend_schema(responses=WithdrawalOutputSerializer)
    def get(self, request, withdrawal_id: int):
        withdrawal = funding_request_for_user(user=request.user, kind=Kind.WITHDRAWAL, request_id=withdrawal_id)
        return Response(WithdrawalOutputSerializer(withdrawal).data)

    @extend_schema(responses={200: WithdrawalOutputSerializer})
    def delete(self, request, withdrawal_id: int):
        withdrawal = withdrawal_cancel(user=request.user, request_id=withdrawal_id)
        return Response(WithdrawalOutputSerializer(withdrawal).data)


class DepositDetailApi(APIView):
    @extend_schema(responses=FundingRequestOutputSerializer)
    def get(self, request, deposit_id: int):
        deposit = funding_request_for_user(user=request.user, kind=Kind.DEPOSIT, request_id=deposit_id)
        return Response(FundingRequestOutputSerializer(deposit).data)
