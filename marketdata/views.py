from django.shortcuts import render

from orders.models import Market


def home(request):
    return render(request, "marketdata/home.html", {"markets": Market.objects.select_related("base", "quote")})
