from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from exchange_site.errors import RuleViolation

from .forms import ApiKeyCreateForm, SignUpForm, TokenCreateForm
from .selectors import api_keys_for_user, tokens_for_user
from .services import api_key_create, api_key_revoke, token_create, token_revoke, user_create


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
    # POST creates an API token (the form on this page), GET shows the page.
    return token_create_view(request) if request.method == "POST" else _profile_page(request)


def _profile_page(request, **context):
    return render(
        request,
        "accounts/profile.html",
        {
            "form": TokenCreateForm(),
            "api_key_form": ApiKeyCreateForm(),
            "tokens": tokens_for_user(user=request.user),
            "api_keys": api_keys_for_user(user=request.user),
            **context,
        },
    )


def token_create_view(request):
    form = TokenCreateForm(request.POST)
    if not form.is_valid():
        return _profile_page(request, form=form)
    _, new_key = token_create(user=request.user, name=form.cleaned_data["name"])
    return _profile_page(request, new_key=new_key)


@login_required
@require_POST
def api_key_create_view(request):
    form = ApiKeyCreateForm(request.POST)
    if not form.is_valid():
        return _profile_page(request, api_key_form=form)
    scopes = "read,trade" if form.cleaned_data["trade"] else "read"
    api_key, secret = api_key_create(user=request.user, name=form.cleaned_data["name"], scopes=scopes)
    # Rendered in this response only: the secret is never retrievable again.
    return _profile_page(request, new_api_key=api_key, new_secret=secret)


@login_required
@require_POST
def api_key_revoke_view(request, api_key_id: int):
    try:
        api_key_revoke(user=request.user, api_key_id=api_key_id)
        messages.success(request, "API key revoked.")
    except RuleViolation as exc:
        messages.error(request, exc.message)
    return redirect("profile")


@login_required
@require_POST
def token_revoke_view(request, token_id: int):
    try:
        token_revoke(user=request.user, token_id=token_id)
        messages.success(request, "Token revoked.")
    except RuleViolation as exc:
        messages.error(request, exc.message)
    return redirect("profile")
