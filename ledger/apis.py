from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from .selectors import balances_for_user


class BalanceListApi(APIView):
    class OutputSerializer(serializers.Serializer):
        asset = serializers.CharField()
        available = serializers.DecimalField(max_digits=36, decimal_places=18, normalize_output=True)
        locked = serializers.DecimalField(max_digits=36, decimal_places=18, normalize_output=True)

    def get(self, request):
        return Response(self.OutputSerializer(balances_for_user(user=request.user), many=True).data)
