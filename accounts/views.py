from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from exchange_site.errors import RuleViolation

from .forms import SignUpForm, TokenCreateForm
from .selectors import tokens_for_user
from .services import token_create, token_revoke, user_create


def signup(request):
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = user_create(
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password1"],
                email=form.cleaned_data.get("email", ""),
            )
        except RuleViolation as exc:
            form.add_error(None, exc.message)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("home")
    return render(request, "accounts/signup.html", {"form": form})


@login_required
def profile(request):
    new_key = None
    form = TokenCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        _, new_key = token_create(user=request.user, name=form.cleaned_data["name"])
        form = TokenCreateForm()
    return render(
        request,
        "accounts/profile.html",
        {"form": form, "tokens": tokens_for_user(user=request.user), "new_key": new_key},
    )


@login_required
@require_POST
def token_revoke_view(request, token_id: int):
    try:
        token_revoke(user=request.user, token_id=token_id)
        messages.success(request, "Token revoked.")
    except RuleViolation as exc:
        messages.error(request, exc.message)
    return redirect("profile")
